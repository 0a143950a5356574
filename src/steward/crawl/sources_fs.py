"""Listing a local (or NFS-mounted) folder tree into datasets.

A walk with :func:`os.scandir` (one ``stat`` per file, none per name for folders it only
passes through), in name order so two crawls of the same tree report the same sequence.

- ``found_in = "dir"``: the first folder on each path whose name holds an accession is a
  dataset; every file below it (through the include/exclude globs) is one of its files, and
  the walk does not look for datasets inside it.
- ``found_in = "file"``: each file chosen by the ``file`` glob whose name holds an accession
  marks a dataset in its folder, made of that file and its siblings whose names start with the
  accession (``E-MTAB-1.idf.txt``, ``E-MTAB-1.sdrf.txt``, ``E-MTAB-1_raw.fq.gz``).

Nothing is skipped silently. A folder Steward may not read is a ``permission-denied`` problem
that hides data: the source is ``failed-partially`` and the datasets it held last time are
``unknown``, not removed; a dataset whose folder is partly unreadable is reported with
``complete=False``. Symbolic links are followed, but a link back to a folder above it
(``symlink-loop``) or to a folder already listed (``seen-twice``) is reported and not entered;
a link to nothing is a ``broken-link``. Names that are not UTF-8 are ``bad-name`` problems
(they could not be stored or shown faithfully). Sockets, pipes and devices are not data.

``quick=True`` trusts directory modification times: a dataset whose folders all kept the times
recorded in the previous state is reported unchanged without a ``stat`` of each file
(``files=None``). Adding, removing or renaming a file changes its folder's time; rewriting a
file in place does not. So the files ``watch`` names (the metadata files the source's
extractors read) are examined every time — an IDF edited in place is always noticed — and only
a data file rewritten in place under the same name waits for the next full crawl
(``steward crawl --full``).
"""

from __future__ import annotations

import builtins
import os
import stat as stat_mode
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steward.adapters.storage import normalize_key
from steward.crawl.accessions import belongs_to
from steward.crawl.config_model import SourceConfig
from steward.crawl.model import FoundDataset, FoundFile, ProblemKind
from steward.crawl.tracking import Listing, Tracker
from steward.errors import ExternalError, NotFound, StorageDenied

Ident = tuple[int, int]


def _join(head: str, tail: str) -> str:
    return f"{head}/{tail}" if head and tail else head or tail


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@dataclass
class _Folder:
    files: list[os.DirEntry[str]]
    dirs: list[os.DirEntry[str]]


class FolderSource:
    """A folder tree as a source of datasets."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        quick: bool = False,
        watch: Callable[[str], bool] | None = None,
    ) -> None:
        self.config = config
        self.root = Path(config.url)
        self.quick = quick
        self._watch = watch
        self._paths = config.paths
        self._filtered = bool(config.include or config.exclude)

    def list(self, previous: Mapping[str, Any] | None = None) -> Listing:
        tracker = Tracker(self.config, previous)
        return Listing(tracker, self._walk(tracker))

    def read(self, dataset: FoundDataset, file: FoundFile, *, limit: int | None = None) -> bytes:
        """The file's bytes (at most ``limit`` + 1, so a caller can tell it was longer)."""
        key = normalize_key(_join(dataset.base, file.path))
        path = self.root / key
        try:
            with path.open("rb") as handle:
                return handle.read(-1 if limit is None else limit + 1)
        except FileNotFoundError:
            raise NotFound(f"{path} no longer exists") from None
        except PermissionError:
            raise StorageDenied(f"Steward may not read {path}") from None
        except OSError as exc:
            raise ExternalError(f"{path} cannot be read: {exc.strerror or exc}") from None

    # -- the walk ---------------------------------------------------------------------------
    def _walk(self, t: Tracker) -> Iterator[FoundDataset]:
        root = self.root
        try:
            st = os.stat(root)
            if not stat_mode.S_ISDIR(st.st_mode):
                raise NotFound(f"{root} is not a folder")
            os.scandir(root).close()
        except FileNotFoundError:
            raise NotFound(f"the folder {root} does not exist") from None
        except PermissionError:
            raise StorageDenied(f"Steward may not read the folder {root}") from None
        except OSError as exc:
            raise ExternalError(f"the folder {root} cannot be read: {exc.strerror}") from None
        ident = (st.st_dev, st.st_ino)
        visited: set[Ident] = {ident}
        stack: builtins.list[tuple[str, tuple[Ident, ...], int]] = [("", (ident,), st.st_mtime_ns)]
        by_dir = self.config.accession.found_in == "dir"
        while stack:
            rel, ancestors, mtime = stack.pop()
            folder = self._scan(t, rel)
            if folder is None:
                continue
            if not by_dir:
                yield from self._file_datasets(t, rel, mtime, folder.files)
            below: builtins.list[tuple[str, tuple[Ident, ...], int]] = []
            for entry in folder.dirs:
                child = _join(rel, entry.name)
                entered = self._enter(t, entry, child, ancestors, visited)
                if entered is None:
                    continue
                child_ident, child_mtime = entered
                accession = self.config.accession.accession_in(entry.name) if by_dir else None
                if accession:
                    yield self._dir_dataset(
                        t, accession, child, child_mtime, (*ancestors, child_ident), visited
                    )
                else:
                    below.append((child, (*ancestors, child_ident), child_mtime))
            stack.extend(reversed(below))

    def _scan(self, t: Tracker, rel: str) -> _Folder | None:
        """The folder's files and sub-folders (those the globs keep), or None if unreadable."""
        path = self.root / rel
        try:
            with os.scandir(path) as found:
                entries = sorted(found, key=_name)
        except PermissionError:
            t.problem(ProblemKind.PERMISSION_DENIED, str(path), "Steward may not read this folder")
            t.hide(rel)
            return None
        except OSError as exc:
            t.problem(ProblemKind.UNREADABLE, str(path), f"cannot be read: {exc.strerror}")
            t.hide(rel)
            return None
        folder = _Folder([], [])
        for entry in entries:
            name = entry.name
            if not name.isascii() and not _utf8(name):
                shown = str(path / _printable(name))
                t.problem(ProblemKind.BAD_NAME, shown, "the name is not UTF-8 text; rename it")
                t.hide(_join(rel, name))
                continue
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                t.problem(ProblemKind.UNREADABLE, str(path / name), str(exc.strerror))
                t.hide(_join(rel, name))
                continue
            if is_dir:
                if not self._filtered or self._paths.wants_dir(_join(rel, name)):
                    folder.dirs.append(entry)
            elif is_file:
                folder.files.append(entry)
            elif entry.is_symlink():
                t.problem(ProblemKind.BROKEN_LINK, str(path / entry.name), "links to nothing")
        return folder

    def _enter(
        self,
        t: Tracker,
        entry: os.DirEntry[str],
        rel: str,
        ancestors: tuple[Ident, ...],
        visited: set[Ident],
    ) -> tuple[Ident, int] | None:
        """The folder's identity and time, or None when it must not be walked (loops)."""
        try:
            st = entry.stat()
        except OSError as exc:
            t.problem(ProblemKind.UNREADABLE, str(self.root / rel), str(exc.strerror))
            t.hide(rel)
            return None
        ident = (st.st_dev, st.st_ino)
        if ident in ancestors:
            t.problem(
                ProblemKind.SYMLINK_LOOP,
                str(self.root / rel),
                "links back to a folder above it; not followed",
            )
            return None
        if ident in visited:
            t.problem(
                ProblemKind.SEEN_TWICE,
                str(self.root / rel),
                "the same folder as one listed already (through a symbolic link); not listed twice",
            )
            return None
        visited.add(ident)
        return ident, st.st_mtime_ns

    def _unchanged(
        self, base: str, base_mtime: int, dirs: Mapping[str, Any], watched: Mapping[str, Any]
    ) -> bool:
        """Whether every folder kept its time and every watched file its size and time
        (``base_mtime``: the base folder's, known from listing its parent)."""
        root = f"{self.root}/{base}" if base else str(self.root)
        try:
            for rel, mtime in dirs.items():
                now = os.stat(f"{root}/{rel}").st_mtime_ns if rel else base_mtime
                if now != mtime:
                    return False
            for rel, (size, mtime) in watched.items():
                st = os.stat(f"{root}/{rel}")
                if st.st_mtime_ns != mtime or st.st_size != size:
                    return False
        except OSError:
            return False
        return True

    def _quick(self, t: Tracker, key: str, base: str, base_mtime: int) -> FoundDataset | None:
        before = t.previous(key)
        if not self.quick or before is None or not before.get("dirs"):
            return None
        if self._watch is not None and "watched" not in before:
            return None  # a state from before files were watched: look at everything once
        if not self._unchanged(base, base_mtime, before["dirs"], before.get("watched", {})):
            return None
        return t.carry(key, base=base)

    def _watched(self, files: builtins.list[FoundFile]) -> dict[str, builtins.list[int]] | None:
        """Size and time of the files a quick crawl examines anyway (see the module doc)."""
        watch = self._watch
        if watch is None:
            return None
        return {f.path: [f.size, f.mtime_ns or 0] for f in files if watch(f.path)}

    def _dir_dataset(
        self,
        t: Tracker,
        accession: str,
        base: str,
        mtime: int,
        ancestors: tuple[Ident, ...],
        visited: set[Ident],
    ) -> FoundDataset:
        quick = self._quick(t, base, base, mtime)
        if quick is not None:
            return quick
        hiding_before = t.hiding
        files: builtins.list[FoundFile] = []
        dirs = {"": mtime}
        stack: builtins.list[tuple[str, tuple[Ident, ...]]] = [("", ancestors)]
        while stack:
            sub, above = stack.pop()
            folder = self._scan(t, _join(base, sub))
            if folder is None:
                continue
            for entry in folder.files:
                path = _join(sub, entry.name)
                found = self._file(t, base, path, entry)
                if found is not None:
                    files.append(found)
            for entry in folder.dirs:
                path = _join(sub, entry.name)
                entered = self._enter(t, entry, _join(base, path), above, visited)
                if entered is not None:
                    dirs[path] = entered[1]
                    stack.append((path, (*above, entered[0])))
        complete = t.hiding == hiding_before
        return t.found(
            accession=accession,
            key=base,
            base=base,
            location=str(self.root / base),
            files=tuple(sorted(files, key=lambda f: f.path)),
            dirs=dirs,
            watched=self._watched(files),
            complete=complete,
        )

    def _file(self, t: Tracker, base: str, path: str, entry: os.DirEntry[str]) -> FoundFile | None:
        if self._filtered and not self._paths.wants_file(_join(base, path)):
            return None
        try:
            st = entry.stat()
        except OSError as exc:
            where = str(self.root / _join(base, path))
            t.problem(ProblemKind.UNREADABLE, where, f"cannot be examined: {exc.strerror}")
            return None
        return FoundFile(path, st.st_size, mtime_ns=st.st_mtime_ns)

    def _file_datasets(
        self, t: Tracker, rel: str, mtime: int, files: builtins.list[os.DirEntry[str]]
    ) -> Iterator[FoundDataset]:
        rule = self.config.accession
        markers: dict[str, builtins.list[os.DirEntry[str]]] = {}
        for entry in files:
            if not self._paths.wants_file(_join(rel, entry.name)):
                continue
            accession = rule.accession_in_file_name(entry.name)
            if accession:
                markers.setdefault(accession, []).append(entry)
        for accession, marked in sorted(markers.items()):
            key = _join(rel, accession)
            quick = self._quick(t, key, rel, mtime)
            if quick is not None:
                yield quick
                continue
            hiding_before = t.hiding
            members = {e.name: e for e in files if belongs_to(e.name, accession)}
            members.update({e.name: e for e in marked})
            found = [self._file(t, rel, name, entry) for name, entry in sorted(members.items())]
            listed = [f for f in found if f is not None]
            yield t.found(
                accession=accession,
                key=key,
                base=rel,
                location=str(self.root / rel / marked[0].name),
                files=tuple(listed),
                dirs={"": mtime},
                watched=self._watched(listed),
                complete=t.hiding == hiding_before,
            )
