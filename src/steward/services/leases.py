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
from datetime import datetime, timedelta

from steward.timeutil import utcnow

LEASE = timedelta(minutes=2)
STOP_CHECK_EVERY = 2.0  # seconds between looks at whether someone stopped the job
RENEW_EVERY = 20.0  # seconds between lease renewals (see ``steward.jobs.runner``)


def me() -> str:
    """Who holds a lease: host, process and thread (a worker runs several jobs at once, and
    one of its threads must not take over another's job as if it were its own)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


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
    host, _, rest = owner.partition(":")
    pid, _, thread = rest.partition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            if not thread or thread == str(threading.get_ident()):
                return True  # this very thread (e.g. a retry after an error in the same run)
            # another thread of this process: it holds the job while its lease runs
        elif not _alive(int(pid)):
            return True
    return lease_until is None or lease_until < (now or utcnow())


def lease_until(now: datetime | None = None) -> datetime:
    return (now or utcnow()) + LEASE


def claim(role: str) -> dict[str, str]:
    """Event data for taking a job: who (``role`` = builder, sender…) and until when.

    Recorded on the event so the read model gets the lease in the same UPDATE (a separate
    write would bump the version without an event)."""
    return {role: me(), "lease_until": lease_until().isoformat()}
