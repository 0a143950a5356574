"""Putting one payload file into a bag: copy, hard link or just hash it — reading it once.

Each function returns the :class:`BuiltFile` and the journal record, or raises
:class:`FileProblem` with details naming the file (wrong size or checksum, a source that changed
while it was read, a missing source) so the builder can go on with the other files and report
every problem together. Errors writing into the bag itself (disk full, permissions) are not the
file's fault and stop the whole build (:class:`BagWriteError`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steward.errors import Detail, StewardError
from steward.packaging.bag_model import BagEntry, BuiltFile, Mode
from steward.packaging.hashing import (
    DEFAULT_ALGORITHMS,
    Digests,
    MultiHash,
    advise_sequential,
    copy_range_and_hash,
    pump,
    pump_fd,
    pump_stream,
    write_all,
)
from steward.packaging.journal import JournalRecord
from steward.packaging.sources import (
    LocalSource,
    S3Source,
    S3Stores,
    Source,
    SourceState,
    local_state,
)

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class FileProblem(Exception):
    def __init__(self, details: list[Detail]) -> None:
        super().__init__("; ".join(str(d) for d in details))
        self.details = details


class BagWriteError(Exception):
    """Writing into the bag directory failed: fatal for the whole build."""

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(f"could not write {path}: {exc.strerror or exc}")
        self.path = path
        self.os_error = exc


@dataclass(frozen=True)
class Job:
    entry: BagEntry
    source: Source
    dest: Path  # the final place under data/ (unused in fetch mode)
    state: SourceState | None  # local sources: stat taken when the build was planned


@dataclass(frozen=True)
class Context:
    mode: Mode
    chunk_size: int
    stores: S3Stores
    on_chunk: Callable[[int], None]
    should_stop: Callable[[], bool]
    trust_manifest: bool
    fetch_url: Callable[[BagEntry, Source], str] | None


def _field(entry: BagEntry) -> str:
    return f"data/{entry.relpath}"


def _problem(
    entry: BagEntry, message: str, *, value: str | None = None, accepted: str | None = None
) -> FileProblem:
    return FileProblem([Detail(message, field=_field(entry), value=value, accepted=accepted)])


def _check_expected(entry: BagEntry, digests: Digests) -> None:
    """Compare what was read with what the manifest promised; every difference is a detail."""
    details = []
    if entry.size is not None and entry.size != digests.size:
        details.append(
            Detail(
                f"{entry.source_uri} has {digests.size} bytes; the manifest says {entry.size}",
                field=_field(entry),
                value=str(digests.size),
                accepted=str(entry.size),
            )
        )
    for name, expected in (("sha256", entry.sha256), ("md5", entry.md5)):
        if expected and expected.lower() != digests.hexdigests[name]:
            details.append(
                Detail(
                    f"{name} of {entry.source_uri} is {digests.hexdigests[name]}; "
                    f"the manifest says {expected.lower()}",
                    field=_field(entry),
                    value=digests.hexdigests[name],
                    accepted=expected.lower(),
                )
            )
    if details:
        raise FileProblem(details)


def _check_unchanged(entry: BagEntry, before: SourceState, after: SourceState, read: int) -> None:
    if before.same_version(after) and read == before.size:
        return
    found = after.describe()
    if read != after.size:
        found += f"; {read} bytes were read"
    raise _problem(
        entry,
        f"{entry.source_uri} changed while it was being read; the package cannot vouch for it",
        value=found,
        accepted=f"unchanged: {before.describe()}",
    )


def _size_precheck(entry: BagEntry, state: SourceState) -> None:
    """Fail before reading terabytes when the size already shows the manifest is wrong."""
    if entry.size is not None and entry.size != state.size:
        raise _problem(
            entry,
            f"{entry.source_uri} has {state.size} bytes; the manifest says {entry.size}",
            value=str(state.size),
            accepted=str(entry.size),
        )


TEMP_SUFFIX = ".steward-part"


def temp_name(dest: Path) -> Path:
    """A hidden name next to ``dest``: creating and renaming within one directory is the
    cheapest way on ext4/XFS, and a leftover from a killed run is a stray the next run deletes."""
    return dest.with_name(f".{os.urandom(16).hex()}{TEMP_SUFFIX}")


class _TempFile:
    """A new file next to its destination, closed exactly once (a second ``os.close`` of a
    reused descriptor number would close another thread's file) and removed unless renamed."""

    def __init__(self, dest: Path) -> None:
        self.path = temp_name(dest)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BagWriteError(self.path, exc) from None
        self._open = True

    def close(self) -> int:
        """Close; returns the file's mtime_ns (a rename keeps it, so no stat is needed later)."""
        mtime = 0
        if self._open:
            self._open = False
            try:
                mtime = os.fstat(self.fd).st_mtime_ns
            finally:
                os.close(self.fd)
        return mtime

    def __enter__(self) -> _TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _install(tmp: Path, dest: Path) -> None:
    """Rename a finished temp file to its place in data/ (the folders exist already)."""
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        raise BagWriteError(dest, exc) from None


def _open_local(entry: BagEntry, source: LocalSource) -> int:
    try:
        return os.open(source.path, os.O_RDONLY | _O_CLOEXEC)
    except FileNotFoundError:
        raise _problem(entry, f"{entry.source_uri} does not exist") from None
    except IsADirectoryError:
        raise _problem(entry, f"{entry.source_uri} is a folder, not a file") from None
    except OSError as exc:
        raise _problem(entry, f"cannot read {entry.source_uri}: {exc.strerror}") from None


def _local_after(entry: BagEntry, source: LocalSource, fd: int) -> SourceState:
    """The open file's state, and — if the path now names another file — that file's."""
    after = local_state(os.fstat(fd))
    try:
        now = local_state(os.stat(source.path))
    except FileNotFoundError:
        raise _problem(entry, f"{entry.source_uri} was removed while it was being read") from None
    return now if now.ino != after.ino or now.dev != after.dev else after


def _write_sink(fd: int, path: Path) -> Callable[[memoryview], None]:
    def sink(chunk: memoryview) -> None:
        try:
            write_all(fd, chunk)
        except OSError as exc:
            raise BagWriteError(path, exc) from None

    return sink


def _copy_local(job: Job, ctx: Context) -> tuple[Digests, SourceState, int]:
    entry, source = job.entry, job.source
    assert isinstance(source, LocalSource)
    fd = _open_local(entry, source)
    try:
        before = local_state(os.fstat(fd))
        _size_precheck(entry, before)
        with _TempFile(job.dest) as out:
            hasher = MultiHash(DEFAULT_ALGORITHMS)
            advise_sequential(fd)
            read = copy_range_and_hash(
                fd,
                out.fd,
                hasher,
                chunk_size=ctx.chunk_size,
                on_chunk=ctx.on_chunk,
                should_stop=ctx.should_stop,
                size_hint=before.size,
            )
            if read is None:  # no in-kernel copy here: read, hash and write ourselves
                read = pump_fd(
                    fd,
                    hasher,
                    sink=_write_sink(out.fd, out.path),
                    chunk_size=ctx.chunk_size,
                    on_chunk=ctx.on_chunk,
                    should_stop=ctx.should_stop,
                    size_hint=before.size,
                )
            _check_unchanged(entry, before, _local_after(entry, source, fd), read)
            digests = hasher.digests()
            _check_expected(entry, digests)
            try:
                # The copy keeps its own modification time (as `cp` without -p): setting the
                # source's would cost one more metadata write per file; BuiltFile keeps it.
                mtime = out.close()
            except OSError as exc:
                raise BagWriteError(out.path, exc) from None
            _install(out.path, job.dest)
    finally:
        os.close(fd)
    return digests, before, mtime


def _hash_local(job: Job, ctx: Context, *, link: bool) -> tuple[Digests, SourceState, int | None]:
    entry, source = job.entry, job.source
    assert isinstance(source, LocalSource)
    fd = _open_local(entry, source)
    try:
        before = local_state(os.fstat(fd))
        _size_precheck(entry, before)
        hasher = MultiHash(DEFAULT_ALGORITHMS)
        advise_sequential(fd)
        read = pump_fd(
            fd,
            hasher,
            chunk_size=ctx.chunk_size,
            on_chunk=ctx.on_chunk,
            should_stop=ctx.should_stop,
            size_hint=before.size,
        )
        _check_unchanged(entry, before, _local_after(entry, source, fd), read)
    finally:
        os.close(fd)
    digests = hasher.digests()
    _check_expected(entry, digests)
    if not link:
        return digests, before, None
    tmp = temp_name(job.dest)
    try:
        os.link(source.path, tmp)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise _problem(
                entry,
                f"{entry.source_uri} is on another file system than the bag; "
                "mode 'link' needs both on one file system (use mode 'copy')",
            ) from None
        raise BagWriteError(tmp, exc) from None
    installed = False
    try:
        linked = local_state(os.stat(tmp))
        if not linked.same_version(before):
            raise _problem(
                entry,
                f"{entry.source_uri} changed while it was being read",
                value=linked.describe(),
                accepted=f"unchanged: {before.describe()}",
            )
        _install(tmp, job.dest)
        installed = True
    finally:
        if not installed:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return digests, before, linked.mtime_ns


def _read_s3(job: Job, ctx: Context, *, copy: bool) -> tuple[Digests, SourceState, int | None]:
    entry, source = job.entry, job.source
    assert isinstance(source, S3Source)
    store = ctx.stores.store(source.bucket)
    try:
        before = ctx.stores.state(source)
    except StewardError as exc:
        raise _problem(entry, f"cannot read {entry.source_uri}: {exc.message}") from None
    _size_precheck(entry, before)
    hasher = MultiHash(DEFAULT_ALGORITHMS)
    mtime: int | None = None
    try:
        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(
                store.open_reader(source.key, max(ctx.chunk_size, 8 << 20))
            )
            sink = None
            out: _TempFile | None = None
            if copy:
                out = stack.enter_context(_TempFile(job.dest))
                sink = _write_sink(out.fd, out.path)
            readinto = getattr(reader, "readinto", None)
            kwargs = {
                "sink": sink,
                "chunk_size": ctx.chunk_size,
                "on_chunk": ctx.on_chunk,
                "should_stop": ctx.should_stop,
                "size_hint": before.size,
            }
            if readinto is not None:
                read = pump(readinto, hasher, **kwargs)  # type: ignore[arg-type]
            else:
                read = pump_stream(reader, hasher, **kwargs)  # type: ignore[arg-type]
            _check_unchanged(entry, before, ctx.stores.state(source), read)
            digests = hasher.digests()
            _check_expected(entry, digests)
            if out is not None:
                try:
                    mtime = out.close()
                except OSError as exc:
                    raise BagWriteError(out.path, exc) from None
                _install(out.path, job.dest)
    except StewardError as exc:
        raise _problem(entry, f"cannot read {entry.source_uri}: {exc.message}") from None
    return digests, before, mtime


def _trusted(job: Job, ctx: Context) -> tuple[Digests, SourceState] | None:
    """Fetch mode may take the manifest's checksums without reading the source — only when both
    checksums and the size are given and the source's current size agrees."""
    entry = job.entry
    if not (ctx.trust_manifest and entry.sha256 and entry.md5 and entry.size is not None):
        return None
    source = job.source
    try:
        state = job.state or (
            ctx.stores.state(source) if isinstance(source, S3Source) else source.stat()
        )
    except (StewardError, OSError):
        return None  # let the normal path report it
    if state.size != entry.size:
        return None
    return Digests(entry.size, {"sha256": entry.sha256.lower(), "md5": entry.md5.lower()}), state


_BAG_SIDE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def process(job: Job, ctx: Context) -> tuple[BuiltFile, JournalRecord]:
    """Put one file into the bag (or, in fetch mode, only hash it) and describe the result."""
    entry, source = job.entry, job.source
    mtime: int | None = None
    trusted = _trusted(job, ctx) if ctx.mode == "fetch" else None
    try:
        if trusted is not None:
            digests, state = trusted
            ctx.on_chunk(digests.size)
        elif isinstance(source, S3Source):
            digests, state, mtime = _read_s3(job, ctx, copy=ctx.mode == "copy")
        elif ctx.mode == "copy":
            digests, state, mtime = _copy_local(job, ctx)
        else:
            digests, state, mtime = _hash_local(job, ctx, link=ctx.mode == "link")
    except OSError as exc:
        # read errors are the file's problem; a full or read-only disk is the bag's
        if exc.errno in _BAG_SIDE:
            raise BagWriteError(job.dest, exc) from None
        raise _problem(entry, f"cannot copy {entry.source_uri}: {exc.strerror or exc}") from None
    fetch_url = ctx.fetch_url(entry, source) if ctx.fetch_url and ctx.mode == "fetch" else None
    built = BuiltFile(
        relpath=entry.relpath,
        size=digests.size,
        sha256=digests.sha256,
        md5=digests.md5,
        source_uri=entry.source_uri,
        source_etag=state.etag,
        source_mtime_ns=state.mtime_ns,
        fetch_url=fetch_url,
        metadata=dict(entry.metadata),
    )
    record = JournalRecord(
        relpath=entry.relpath,
        mode=ctx.mode,
        source_uri=entry.source_uri,
        size=digests.size,
        sha256=digests.sha256,
        md5=digests.md5,
        source_size=state.size,
        source_mtime_ns=state.mtime_ns,
        source_ino=state.ino,
        source_etag=state.etag,
        dest_mtime_ns=mtime,
        fetch_url=fetch_url,
    )
    return built, record
