"""The API served for real by uvicorn on a free loopback port, in a thread, for the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from steward.api.app import create_app
from steward.config import Settings
from tests.pg import free_port


@contextmanager
def serving(settings: Settings, *, worker: bool = False) -> Iterator[str]:
    """The base URL of a running server over ``settings``; stopped on leaving."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, worker=worker, listening=f"http://127.0.0.1:{port}"),
        host="127.0.0.1", port=port, log_level="warning",
        lifespan="on",
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
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
