"""A local folder as a :class:`~steward.adapters.storage.Store`.

Writes go to a hidden temporary file next to the target and are renamed into place only when
complete, so an interrupted write (an exception, kill -9) never leaves half a file under the
final name; listing skips such leftovers and :meth:`LocalStore.abort_incomplete` removes them.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from steward.adapters.storage import ObjectInfo, Store, normalize_key
from steward.errors import ConfigurationError, NotFound, StewardError, StorageDenied

TEMP_SUFFIX = ".steward-part"


PROBE_PREFIX = ".probe-"
_PROBE = re.compile(r"\.probe-[0-9a-f]{12}" + re.escape(TEMP_SUFFIX))
"""check_writable()'s probe, exactly: no key's temporary file (``.<key>.<hex>.…``) reads so."""


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _write_unnamed(folder: Path) -> bool:
    """Write to a file with no name in ``folder`` (Linux O_TMPFILE): proof of the right to
    write that nothing, not even kill -9, can leave behind. False where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        fd = os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return False
        raise
    try:
        os.write(fd, b"\0")
    finally:
        os.close(fd)
    return True


class LocalStore(Store):
    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    # -- helpers ----------------------------------------------------------------------------
    def local_path(self, key: str) -> Path:
        return self.root / normalize_key(key)

    def _error(self, exc: OSError, key: str, action: str) -> StewardError:
        where = self.join(key)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return NotFound(f"{where} does not exist")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StorageDenied(f"not allowed to {action} {where}: {exc.strerror}")
        if exc.errno == errno.EISDIR:
            return NotFound(f"{where} is a folder, not a file")
        return ConfigurationError(f"could not {action} {where}: {exc.strerror or exc}")

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            mtime_ns=st.st_mtime_ns,
        )

    # -- reading ----------------------------------------------------------------------------
    def stat(self, key: str) -> ObjectInfo:
        key = normalize_key(key)
        path = self.root / key
        try:
            st = path.stat()
        except OSError as exc:
            raise self._error(exc, key, "read") from None
        if not path.is_file():
            raise NotFound(f"{self.join(key)} is a folder, not a file")
        return self._info(key, st)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = normalize_key(prefix, field="prefix", allow_empty=True)
        top = self.root / prefix if prefix else self.root
        found: list[ObjectInfo] = []
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                continue
            except OSError as exc:
                raise self._error(exc, prefix, "list") from None
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file() and not _is_temp(entry.name):
                    key = Path(entry.path).relative_to(self.root).as_posix()
                    found.append(self._info(key, entry.stat()))
        found.sort(key=lambda info: info.key.encode())
        yield from found

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        key = normalize_key(key)
        try:
            with (self.root / key).open("rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
        except OSError as exc:
            raise self._error(exc, key, "read") from None

    @contextmanager
    def _reader(self, key: str, chunk_size: int) -> Iterator[BinaryIO]:
        try:
            f = (self.root / key).open("rb", buffering=chunk_size)
        except OSError as exc:
            raise self._error(exc, key, "read") from None
        with f:
            yield f

    def open_reader(self, key: str, chunk_size: int = 8 << 20) -> AbstractContextManager[BinaryIO]:
        return self._reader(normalize_key(key), chunk_size)

    # -- writing ----------------------------------------------------------------------------
    def _make_parent(self, path: Path, key: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(exc, key, "write") from None

    def open_writer(
        self,
        key: str,
        *,
        size_hint: int | None = None,
        metadata: Mapping[str, str] | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> AbstractContextManager[_LocalWriter]:
        key = normalize_key(key)
        path = self.root / key
        self._make_parent(path, key)
        return _LocalWriter(self, key, path)

    def copy(self, src_key: str, dst_key: str) -> None:
        src_key, dst_key = normalize_key(src_key), normalize_key(dst_key)
        src = self.root / src_key
        if not src.is_file():
            raise NotFound(f"{self.join(src_key)} does not exist")
        with self._reader(src_key, 8 << 20) as r, self.open_writer(dst_key) as w:
            while chunk := r.read(8 << 20):
                w.write(chunk)

    def delete(self, key: str) -> None:
        key = normalize_key(key)
        try:
            (self.root / key).unlink(missing_ok=True)
        except IsADirectoryError:
            raise NotFound(f"{self.join(key)} is a folder, not a file") from None
        except OSError as exc:
            raise self._error(exc, key, "delete") from None

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if _write_unnamed(self.root):
                return
            # No unnamed files here (not Linux, or a filesystem without O_TMPFILE): a named
            # probe, which abort_incomplete() sweeps if we are killed before removing it.
            probe = self.root / f"{PROBE_PREFIX}{secrets.token_hex(6)}{TEMP_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)  # another process's sweep may have taken it
        except OSError as exc:
            raise self._error(exc, "", "write to") from None

    def abort_incomplete(self, keys: set[str] | None = None) -> int:
        if not self.root.is_dir():
            return 0
        folders = (
            {(self.root / normalize_key(k)).parent for k in keys}
            if keys is not None
            else {Path(d) for d, _, _ in os.walk(self.root)}
        )
        names = {Path(k).name for k in keys} if keys is not None else None
        folders.add(self.root)  # check_writable()'s probes, whatever the keys
        removed = 0
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not _is_temp(entry.name):
                    continue
                target = entry.name[1:].rsplit(".", 2)[0]
                probe = folder == self.root and _PROBE.fullmatch(entry.name) is not None
                if names is None or target in names or probe:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed


class _LocalWriter:
    """Writes ``.<name>.<random>.steward-part`` and renames it over ``<name>`` on success."""

    part_size: int | None = None

    def __init__(self, store: LocalStore, key: str, path: Path) -> None:
        self.store, self.key, self.path = store, key, path
        self.temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")
        self.file: BinaryIO | None = None

    def __enter__(self) -> _LocalWriter:
        try:
            self.file = self.temp.open("wb")
        except OSError as exc:
            raise self.store._error(exc, self.key, "write") from None
        return self

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        assert self.file is not None, "write outside the with block"
        try:
            self.file.write(data)
        except OSError as exc:
            raise self.store._error(exc, self.key, "write") from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file, self.file = self.file, None
        try:
            if file is not None:
                file.close()
            if exc_type is None:
                os.replace(self.temp, self.path)
        except OSError as err:
            self.temp.unlink(missing_ok=True)
            raise self.store._error(err, self.key, "write") from None
        finally:
            if exc_type is not None:
                self.temp.unlink(missing_ok=True)
