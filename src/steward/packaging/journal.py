"""The build journal: which payload files are already complete, so a re-run skips them.

One JSON line per finished file, appended with a single ``os.write`` on an ``O_APPEND``
descriptor, so a kill -9 can at worst leave one torn last line (ignored on reading). Lines are
not fsynced one by one — a process killed by a signal loses nothing the kernel already holds, and
an fsync per file would cost more than copying small files. A power failure could lose both
data and journal lines the kernel had not written yet, so the journal records the kernel's boot
id and a journal from an earlier boot is not trusted at all: everything is checked again.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_VERSION = 1


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class JournalRecord:
    relpath: str
    mode: str
    source_uri: str
    size: int
    sha256: str
    md5: str
    source_size: int
    source_mtime_ns: int | None
    source_ino: int | None
    source_etag: str | None
    dest_mtime_ns: int | None  # None in fetch mode: nothing is written to data/
    fetch_url: str | None

    def line(self) -> bytes:
        # vars(), not asdict(): every field is a plain value, and asdict's deep copy cost as
        # much per file as the rest of the bookkeeping together
        return (json.dumps(vars(self), ensure_ascii=False, sort_keys=True) + "\n").encode()


def _record(obj: dict[str, Any]) -> JournalRecord | None:
    try:
        return JournalRecord(**obj)
    except TypeError:
        return None


def load_journal(path: Path) -> dict[str, JournalRecord]:
    """The last complete record per payload path; empty when missing, foreign or from an
    earlier boot."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    lines = raw.split(b"\n")
    records: dict[str, JournalRecord] = {}
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line after a kill
        if not isinstance(obj, dict):
            continue
        if index == 0:
            if obj.get("journal") != JOURNAL_VERSION or obj.get("boot_id") != boot_id():
                return {}
            continue
        record = _record(obj)
        if record is not None:
            records[record.relpath] = record
    return records


class Journal:
    """Appends records; safe to call from several worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def open(self, records: dict[str, JournalRecord]) -> None:
        """Rewrite the journal with a fresh header and the records still valid, then append."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"journal": JOURNAL_VERSION, "boot_id": boot_id()}) + "\n"
        body = b"".join(r.line() for r in records.values())
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(header.encode() + body)
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))

    def append(self, record: JournalRecord) -> None:
        data = record.line()
        with self._lock:
            if self._fd is None:
                raise RuntimeError("journal is not open")
            os.write(self._fd, data)

    def close(self) -> None:
        """No fsync: it would wait for the whole payload's writeback (seconds per GB) and buy
        nothing the boot id does not already cover."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
