"""Fewer garbage collections while bulk work runs.

CPython's cyclic collector runs after every 700 net allocations of container objects, and
every tenth and hundredth of those runs walks older generations: in a crawl, the hundreds of
thousands of objects of the imported libraries, again and again, looking for cycles in
garbage that reference counting frees anyway. On the crawl benchmark that was a sixth of an
unchanged re-crawl. While :func:`fewer_collections` holds, the objects that existed before
are frozen (never walked) and young collections are rarer; both are undone after, so cycles
made during the work are still collected, only in larger batches.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Allocations between young collections while held (CPython's default: 700)."""

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect less often inside the block. Process-wide, and safe to nest or hold from
    several threads at once: the first holder changes the collector, the last restores it."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), _saved[1], _saved[2])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
