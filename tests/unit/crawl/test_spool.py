"""The crawl's spool: found files wait on disk, not in memory, and come back unchanged."""

from __future__ import annotations

from pathlib import Path

from steward.crawl.model import FoundFile
from steward.services.crawl_spool import Spool


def test_files_come_back_as_they_went_in_from_a_file_nobody_else_can_open(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first = [FoundFile("a/b.fq", 12, mtime_ns=1), FoundFile("é x.txt", 0, mtime_ns=None)]
    second = [FoundFile(f"k{i}", i, etag=f'"{i}"') for i in range(1000)]
    a, b, empty = spool.put(first), spool.put(second), spool.put([])
    assert list(a) == first
    assert list(b) == second
    assert list(b) == second
    assert len(a) == 2
    assert len(b) == 1000
    assert len(empty) == 0
    assert list(empty) == []
    assert b[999] == second[999]
    assert b[1:3] == second[1:3]
    assert list(tmp_path.iterdir()) == []  # no name in the folder: removed whatever happens
    spool.close()
