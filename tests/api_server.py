"""The API served for real by uvicorn on a free loopback port, in a thread, for the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from steward.api.app import create_app
from steward.config import Settings
from tests.pg import free_port


@contextmanager
def serving(
    settings: Settings, *, worker: bool = False, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """The base URL of a running server over ``settings``; stopped on leaving. With ``tls``
    (certificate, key: PEM files) it speaks https."""
    port = free_port()
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    config = uvicorn.Config(
        create_app(settings, worker=worker, listening=base),
        host="127.0.0.1", port=port, log_level="warning",
        lifespan="on",
        ssl_certfile=str(tls[0]) if tls else None, ssl_keyfile=str(tls[1]) if tls else None,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
