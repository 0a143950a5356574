"""Fewer garbage collections while bulk work runs.

CPython's cyclic collector runs after every 700 net allocations of container objects, and
every tenth and hundredth of those runs walks older generations: in a crawl, the hundreds of
thousands of objects of the imported libraries, again and again, looking for cycles in
garbage that reference counting frees anyway. On the crawl benchmark that was a sixth of an
unchanged re-crawl. While :func:`fewer_collections` holds, the objects that existed before
are frozen (never walked) and young collections are rarer; both are undone after, so cycles
made during the work are still collected, only in larger batches.

:func:`collector_off` goes further, for work that makes millions of objects and no cycles
(an import's rows): no collection at all until it ends. Both are process-wide and count their
holders, so threads and nesting restore the collector exactly as they found it.
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


_off_lock = threading.Lock()
_off_holders = 0
_was_enabled = True


@contextmanager
def collector_off() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees everything
    acyclic): the first holder switches the collector off, the last one back on if it was."""
    global _off_holders, _was_enabled
    with _off_lock:
        if _off_holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _off_holders += 1
    try:
        yield
    finally:
        with _off_lock:
            _off_holders -= 1
            if _off_holders == 0 and _was_enabled:
                gc.enable()
