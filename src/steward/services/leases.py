"""Who is working on a long job (a build, a push) and whether they are still alive.

A job that runs outside a transaction holds a lease: its owner (host and process id) and a
time it must renew before. A second process may take the job over when the lease ran out, or
at once when the owner was on this host and its process is gone (a kill -9): the re-run that
follows a crash should not have to wait out the lease.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from steward.db.session import Database
from steward.timeutil import utcnow

LEASE = timedelta(minutes=2)
STOP_CHECK_EVERY = 2.0  # seconds between looks at whether someone stopped the job
RENEW_EVERY = 20.0  # seconds


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_gone(
    owner: str | None, lease_until: datetime | None, now: datetime | None = None
) -> bool:
    """True when nobody holds the job any more (so another process may take it over)."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return True  # this process itself (e.g. a retry after an error in the same run)
        if not _alive(int(pid)):
            return True
    return lease_until is None or lease_until < (now or utcnow())


def lease_until(now: datetime | None = None) -> datetime:
    return (now or utcnow()) + LEASE


def claim(role: str) -> dict[str, str]:
    """Event data for taking a job: who (``role`` = builder, sender…) and until when.

    Recorded on the event so the read model gets the lease in the same UPDATE (a separate
    write would bump the version without an event)."""
    return {role: me(), "lease_until": lease_until().isoformat()}


@contextmanager
def renewing(renew: Callable[[datetime], None]) -> Iterator[None]:
    """Renew a lease in the background while the body runs; stop when it ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(RENEW_EVERY):
            try:
                renew(lease_until())
            except Exception:
                continue

    thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def stop_when_moved(db: Database, model: Any, subject_id: str, state: str) -> Callable[[], bool]:
    """A ``should_stop`` for long jobs: True once the subject left ``state`` (e.g. aborted).

    Looks at the database every few seconds, not on every block the job moves.
    """
    last = 0.0
    stopped = False

    def should_stop() -> bool:
        nonlocal last, stopped
        now = time.monotonic()
        if not stopped and now - last >= STOP_CHECK_EVERY:
            last = now
            with db.read() as s:
                stopped = s.scalar(select(model.state).where(model.id == subject_id)) != state
        return stopped

    return should_stop
