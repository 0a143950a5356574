"""The files of the places a crawl found, kept on disk between listing and writing.

A crawl decides every dataset before it writes any (a dataset's stage depends on every source
it is in), so whatever the listing found waits in the process until the write. Names, sizes
and times of a million files as Python objects take several hundred megabytes; here they wait
in an unnamed temporary file instead (``marshal``-ed, one record per place) and come back a
chunk at a time, so a crawl's memory follows its datasets, not its files. The file has no
name: the operating system removes it when the crawl ends however it ends (kill -9 included),
and no other process can open it.
"""

from __future__ import annotations

import marshal
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, overload

from steward.crawl.model import FoundFile


class Spool:
    """Append-only store of file lists; :meth:`put` answers a lazy sequence over one."""

    def __init__(self, folder: Path | None = None) -> None:
        self._file: IO[bytes] | None = None
        self._folder = folder
        self._end = 0
        self._dirty = False

    def put(self, files: Sequence[FoundFile]) -> SpooledFiles:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._folder)  # noqa: SIM115 (lives on)
        data = marshal.dumps([(f.path, f.size, f.mtime_ns, f.etag) for f in files])
        self._file.write(data)
        self._dirty = True
        offset, self._end = self._end, self._end + len(data)
        return SpooledFiles(self, offset, len(data), len(files))

    def read(self, offset: int, size: int) -> bytes:
        assert self._file is not None
        if self._dirty:
            self._file.flush()
            self._dirty = False
        return os.pread(self._file.fileno(), size, offset)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SpooledFiles(Sequence[FoundFile]):
    """One place's files, read back from the spool each time they are walked."""

    __slots__ = ("_count", "_offset", "_size", "_spool")

    def __init__(self, spool: Spool, offset: int, size: int, count: int) -> None:
        self._spool, self._offset, self._size, self._count = spool, offset, size, count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[FoundFile]:
        for path, size, mtime_ns, etag in marshal.loads(self._spool.read(self._offset, self._size)):
            yield FoundFile(path, size, mtime_ns=mtime_ns, etag=etag)

    @overload
    def __getitem__(self, index: int) -> FoundFile: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[FoundFile]: ...
    def __getitem__(self, index: int | slice) -> FoundFile | Sequence[FoundFile]:
        return list(self)[index]
