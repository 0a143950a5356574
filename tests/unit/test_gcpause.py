"""The collector is changed while bulk work holds it and restored exactly after, however the
holders nest or overlap across threads."""

from __future__ import annotations

import gc
import threading

import pytest

from steward.gcpause import YOUNG_THRESHOLD, collector_off, fewer_collections


def test_held_it_freezes_and_collects_less_then_restores() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(YOUNG_THRESHOLD, before[0])
        assert gc.get_freeze_count() > 0  # what existed before is not walked again
        with fewer_collections():  # nested: still held
            pass
        assert gc.get_threshold()[0] == max(YOUNG_THRESHOLD, before[0])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_after_an_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(ZeroDivisionError), fewer_collections():
        _ = 1 / 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_threads_restore_the_original() -> None:
    before = gc.get_threshold()
    first_in, second_out = threading.Event(), threading.Event()

    def first() -> None:
        with fewer_collections():
            first_in.set()
            second_out.wait(10)

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(10)
    with fewer_collections():  # enters while the first holds it, leaves before it
        pass
    assert gc.get_threshold()[0] == max(YOUNG_THRESHOLD, before[0])  # still held by the first
    second_out.set()
    worker.join(10)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_decorated_function_holds_it_per_call() -> None:
    seen: list[int] = []

    @fewer_collections()
    def work() -> None:
        seen.append(gc.get_threshold()[0])

    before = gc.get_threshold()
    work()
    work()
    assert seen == [max(YOUNG_THRESHOLD, before[0])] * 2
    assert gc.get_threshold() == before


def test_collector_off_nests_and_restores_what_it_found() -> None:
    assert gc.isenabled()
    with collector_off():
        assert not gc.isenabled()
        with collector_off():
            pass
        assert not gc.isenabled()  # the outer holder still holds it
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_off():
            pass
        assert not gc.isenabled()  # found off, left off
    finally:
        gc.enable()
