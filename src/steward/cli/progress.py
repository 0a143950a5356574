"""Progress bars for long work (builds, pushes): bytes, files, throughput and time left.

Drawn on stderr so ``--json`` output on stdout stays clean; switched off with ``--json`` and
when stderr is not a terminal (CI logs get the final summary line instead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from steward.cli.state import STATE


class Bar:
    """Thread-safe callbacks the services call: ``start(bytes, files)``, ``advance(b, f)``."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._label = label
        self._task: TaskID | None = None
        self._files_total = 0
        self._files_done = 0
        self._lock = threading.Lock()

    def start(self, total_bytes: int, total_files: int) -> None:
        with self._lock:
            self._files_total = total_files
            self._task = self._progress.add_task(
                self._label, total=max(total_bytes, 1), files=f"0/{total_files} files"
            )

    def advance(self, nbytes: int, nfiles: int) -> None:
        with self._lock:
            if self._task is None:
                return
            self._files_done += nfiles
            self._progress.update(
                self._task,
                advance=nbytes,
                files=f"{self._files_done}/{self._files_total} files",
            )


@contextmanager
def bar(label: str) -> Iterator[tuple[Callable[[int, int], None], Callable[[int, int], None]]]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[files]}"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=STATE.err,
        disable=STATE.json or not STATE.err.is_terminal,
        transient=False,
    )
    b = Bar(progress, label)
    with progress:
        yield b.start, b.advance
