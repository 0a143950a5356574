"""A JSON endpoint on loopback for the crawl's HTTP source: pages, failures and slowness on cue.

``with json_endpoint() as api:`` serves ``api.pages[path] = (body, headers)`` at
``api.url + path`` on a free port, and is stopped when the block ends. Each page answers with an
ETag of its body and ``304`` to a matching ``If-None-Match``. ``api.fail[path] = [500, 500]``
answers those statuses first; ``api.slow[path] = [2.0]`` sleeps that long before the next
answers. Every request is kept (path, headers) so tests can count retries and check what was
sent.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Endpoint:
    url: str = ""
    pages: dict[str, tuple[Any, dict[str, str]]] = field(default_factory=dict)
    fail: dict[str, list[int]] = field(default_factory=dict)
    slow: dict[str, list[float]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, path: str, body: Any, **headers: str) -> None:
        self.pages[path] = (body, headers)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@contextmanager
def json_endpoint() -> Iterator[Endpoint]:
    api = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path
            with api.lock:
                api.requests.append((path, dict(self.headers.items())))
                delays = api.slow.get(path)
                delay = delays.pop(0) if delays else 0.0
                failures = api.fail.get(path)
                status = failures.pop(0) if failures else None
            if delay:
                time.sleep(delay)
            if status is not None:
                self._answer(status, b'{"error": "scripted failure"}', {})
                return
            if path not in api.pages:
                self._answer(404, b'{"error": "no such page"}', {})
                return
            body, headers = api.pages[path]
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self._answer(304, b"", {"ETag": etag})
                return
            self._answer(200, data, {"ETag": etag, **headers})

        def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if data:
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout being tested)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
