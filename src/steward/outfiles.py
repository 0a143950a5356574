"""Files Steward writes where a person asked it to: report exports and download scripts.

One helper decides how, so every such file behaves the same:

- **Complete or absent.** The bytes go to a hidden temporary file in the target's folder, are
  flushed to disk and only then renamed into place; a failure removes the temporary file, and
  the temporary file of a write that was killed (kill -9) is removed by the next write of the
  same file (a writer locks its own while it lives, so a live one is never taken for it).
- **No silent folders.** A missing folder is an error naming it (a typo in ``-o`` would
  otherwise create a tree nobody asked for), unless the caller owns the place (``parents``).
- **No silent overwrites.** An existing file is kept unless ``overwrite`` (``--force``); the
  final step is a hard link, which fails atomically if a file appeared meanwhile.
- **The right mode.** Exports follow the umask (they hold no secrets); files holding signed
  links get an exact private mode (0600, or 0700 for scripts) whatever the umask, and folders
  created for them are 0700.
- **Errors name the path** and are ``ValidationFailed`` (exit 2) when the path is at fault;
  a full disk or an I/O error is a plain ``StewardError`` (exit 1).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from steward.errors import Detail, StewardError, ValidationFailed

PRIVATE = 0o600
"""Mode of a file that holds secrets (signed links)."""
PRIVATE_SCRIPT = 0o700
"""Mode of a script that holds secrets: its owner may run it, nobody else may read it."""
TEMP_SUFFIX = ".part"
_PATH_FAULTS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EEXIST,
}
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def _refuse(message: str, path: Path, field: str, accepted: str | None = None) -> ValidationFailed:
    return ValidationFailed(
        f"cannot write {path}: {message}",
        [Detail(message, field=field, value=str(path), accepted=accepted)],
    )


def _exists(target: Path, field: str, force_hint: str) -> ValidationFailed:
    return _refuse(
        "the file already exists",
        target,
        field,
        f"another name, or {force_hint} to replace it" if force_hint else "another name",
    )


def _os_error(exc: OSError, path: Path, field: str) -> StewardError:
    reason = exc.strerror or str(exc)
    if exc.errno in _PATH_FAULTS:
        return _refuse(reason, path, field, "a file in an existing folder you may write to")
    return StewardError(f"could not write {path}: {reason}", [Detail(reason, field=field)])


def check_target(
    path: Path,
    *,
    overwrite: bool = False,
    parents: bool = False,
    private: bool = False,
    field: str = "output",
    force_hint: str = "--force",
) -> Path:
    """Refuse a target that cannot or may not be written; return it absolute.

    Called by :func:`open_output` before anything is written, and on its own by callers that
    want to refuse a bad path before doing expensive or recorded work.
    """
    if not str(path).strip():
        raise _refuse("no file name given", path, field, "a file name such as report.csv")
    target = Path(os.path.abspath(path))
    if target.is_dir():
        raise _refuse("it is a folder", target, field, "a file name inside the folder")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise _exists(target, field, force_hint)
    folder = target.parent
    if not folder.exists():
        if not parents:
            raise _refuse(
                f"the folder {folder} does not exist",
                target,
                field,
                "a file in an existing folder (create the folder first)",
            )
        try:
            _make_folders(folder, private=private)
        except OSError as exc:
            raise _os_error(exc, folder, field) from None
    elif not folder.is_dir():
        raise _refuse(f"{folder} is not a folder", target, field)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _refuse(
            f"no permission to write in {folder}",
            target,
            field,
            "a folder you may write to",
        )
    return target


def _make_folders(folder: Path, *, private: bool) -> None:
    missing: list[Path] = []
    here = folder
    while not here.exists():
        missing.append(here)
        here = here.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):
            each.mkdir(mode=0o700 if private else 0o777)
        if private:
            os.chmod(each, 0o700)  # mkdir's mode is cut by the umask; private means exactly


@contextmanager
def atomic_file(
    target: Path, *, binary: bool = False, mode: int | None = None, overwrite: bool = True
) -> Iterator[IO[Any]]:
    """The temporary-file-and-rename core, without :func:`check_target`'s checks.

    ``mode`` None follows the umask (0666 minus it); a number is applied exactly. Raises
    ``OSError`` as the system reports it, or ``FileExistsError`` when ``overwrite`` is off and
    the name is taken; :func:`open_output` turns both into messages for people.
    """
    _sweep_strays(target)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(_TOKEN_BYTES)}{TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, 0o666 if mode is None else PRIVATE)
    try:
        with os.fdopen(fd, "wb") as raw:
            _hold(raw.fileno())  # ours while open: _sweep_strays leaves it alone
            if binary:
                yield raw
            else:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
                yield text
                text.flush()
                text.detach()
            raw.flush()
            os.fsync(raw.fileno())
            if mode is not None:
                os.fchmod(raw.fileno(), mode)
            _commit(temp, target, overwrite=overwrite)  # before the lock goes with the close
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)


_TOKEN_BYTES = 6


def _hold(fd: int) -> None:
    """Lock a temporary file for as long as its writer lives (the kernel lets go when the
    process ends, however it ends); where locks are not supported, nothing is swept."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


_STRAY_AGE_NS = 60 * 10**9
"""A temporary file younger than this is never taken for a stray: its writer may be between
creating and locking it, or on a file system whose locks other hosts do not see."""


def _sweep_strays(target: Path) -> None:
    """Remove the temporary files of earlier writes of ``target`` whose writer was killed
    (kill -9, a power cut): a stray is one nobody holds the lock of, untouched for a minute.
    A writer still at work holds its lock, and its file is left alone."""
    prefix, size = f".{target.name}.", len(target.name) + 2 + 2 * _TOKEN_BYTES + len(TEMP_SUFFIX)
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    now = time.time_ns()
    for entry in entries:
        name = entry.name
        if len(name) != size or not name.startswith(prefix) or not name.endswith(TEMP_SUFFIX):
            continue
        token = name[len(prefix) : -len(TEMP_SUFFIX)]
        if any(c not in "0123456789abcdef" for c in token):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime_ns < _STRAY_AGE_NS:
                continue
        except OSError:
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | os.O_NOFOLLOW)
        except OSError:
            continue  # someone else's file, or gone already
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its writer is alive (or locks are not supported here)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        finally:
            os.close(fd)


def _commit(temp: Path, target: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)  # fails if the name was taken meanwhile: nothing is replaced
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if target.exists() or target.is_symlink():  # a file system without hard links
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.replace(temp, target)
        return
    temp.unlink()


@contextmanager
def open_output(
    path: Path,
    *,
    binary: bool = False,
    mode: int | None = None,
    overwrite: bool = False,
    parents: bool = False,
    field: str = "output",
    force_hint: str = "--force",
) -> Iterator[IO[Any]]:
    """A file object whose bytes appear at ``path`` only when the block ends cleanly.

    ``mode`` None follows the umask; use :data:`PRIVATE` or :data:`PRIVATE_SCRIPT` for files
    holding secrets. Text is UTF-8, written as given (no newline translation).
    """
    target = check_target(
        path,
        overwrite=overwrite,
        parents=parents,
        private=mode is not None,
        field=field,
        force_hint=force_hint,
    )
    try:
        with atomic_file(target, binary=binary, mode=mode, overwrite=overwrite) as out:
            yield out
    except FileExistsError:
        raise _exists(target, field, force_hint) from None
    except OSError as exc:
        raise _os_error(exc, target, field) from None


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every file system lets a folder be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_output(
    path: Path,
    data: str | bytes,
    *,
    mode: int | None = None,
    overwrite: bool = False,
    parents: bool = False,
    field: str = "output",
    force_hint: str = "--force",
) -> Path:
    """Write ``data`` through :func:`open_output`; return the absolute path."""
    with open_output(
        path,
        binary=isinstance(data, bytes),
        mode=mode,
        overwrite=overwrite,
        parents=parents,
        field=field,
        force_hint=force_hint,
    ) as out:
        out.write(data)
    return Path(os.path.abspath(path))
