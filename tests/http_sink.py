"""A real HTTP server on loopback that receives webhooks, for outbox tests.

It behaves like a careful receiver: an effect is applied once per ``Idempotency-Key``
(a repeat is answered 200 and not applied again), and every call is kept, so tests can count
both what arrived and what happened.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Sink:
    url: str
    calls: list[tuple[str, Any]] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    """Answers to give first (e.g. [503]); then 200."""
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_sink(delay: float = 0.0) -> Iterator[Sink]:
    sink = Sink(url="", delay=delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"] or 0)) or b"{}")
            key = self.headers.get("Idempotency-Key", "")
            if sink.delay:
                time.sleep(sink.delay)
            with sink.lock:
                sink.calls.append((key, body))
                status = sink.statuses.pop(0) if sink.statuses else 200
                if status == 200 and key not in sink.applied:
                    sink.applied[key] = 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
