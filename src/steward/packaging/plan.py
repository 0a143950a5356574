"""Before any byte moves: claim the bag folder, check the whole file list, tidy ``data/``.

Every bad entry is reported at once (a row number and the payload path each), so a manifest
with ten problems needs one round trip, not ten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from steward.errors import ConfigurationError, Conflict, Detail, ValidationFailed
from steward.packaging.bag_model import BagEntry, Mode
from steward.packaging.bagit_files import (
    BUILD_DIR,
    PAYLOAD_DIR,
    is_manifest,
    nfc,
    unsafe_relpath_reason,
)
from steward.packaging.hashing import DIGEST_HEX_LENGTH
from steward.packaging.payload import Job
from steward.packaging.sources import LocalSource, Source, parse_source


def claim_dir(bag_dir: Path) -> None:
    """Refuse to build into a folder Steward did not create: stray files there get deleted."""
    build = bag_dir / BUILD_DIR
    if bag_dir.exists() and not build.is_dir() and any(bag_dir.iterdir()):
        info = bag_dir / "bag-info.txt"
        ours = info.is_file() and "Bag-Software-Agent: Steward" in info.read_text(errors="replace")
        if not ours:
            raise Conflict(
                f"{bag_dir} holds files that are not a Steward bag; refusing to build there",
                [Detail("not empty", field="bag_dir", value=str(bag_dir), accepted="a new folder")],
            )
    try:
        build.mkdir(exist_ok=True)
        (bag_dir / PAYLOAD_DIR).mkdir(exist_ok=True)
        for child in bag_dir.iterdir():  # a finished bag being rebuilt is unfinished again
            if child.is_file() and is_manifest(child.name) and child.name.startswith("tag"):
                child.unlink()
    except OSError as exc:
        raise ConfigurationError(f"cannot prepare {bag_dir}: {exc.strerror or exc}") from None


def check_digest(entry: BagEntry, name: str, value: str | None, row: int) -> Detail | None:
    if value is None or (
        len(value) == DIGEST_HEX_LENGTH[name] and all(c in "0123456789abcdefABCDEF" for c in value)
    ):
        return None
    return Detail(
        f"{name} is not a hex digest",
        field=f"data/{entry.relpath}",
        row=row,
        value=value,
        accepted=f"{DIGEST_HEX_LENGTH[name]} hexadecimal characters",
    )


def plan(bag_dir: Path, entries: Sequence[BagEntry], mode: Mode) -> list[Job]:
    """Check every entry before any byte moves; all problems are reported together."""
    problems: list[Detail] = []
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    keys = [nfc(e.relpath) for e in entries]
    files = set(keys)
    data = bag_dir / PAYLOAD_DIR
    bag_dev = os.stat(bag_dir).st_dev
    for row, (entry, key) in enumerate(zip(entries, keys, strict=True), start=1):
        where = f"data/{entry.relpath}"
        reason = unsafe_relpath_reason(entry.relpath)
        if reason:
            problems.append(Detail(reason, field=where, row=row, accepted="a/relative/path"))
            continue
        if key in seen:
            problems.append(Detail(f"the same path as entry {seen[key]}", field=where, row=row))
            continue
        seen[key] = row
        parts = key.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                problems.append(
                    Detail(
                        f"'{'/'.join(parts[:i])}' is both a file and a folder", field=where, row=row
                    )
                )
                break
        if entry.size is not None and entry.size < 0:
            problems.append(Detail("negative size", field=where, row=row, value=str(entry.size)))
        for name, value in (("sha256", entry.sha256), ("md5", entry.md5)):
            if (bad := check_digest(entry, name, value, row)) is not None:
                problems.append(bad)
        try:
            source: Source = parse_source(entry.source_uri)
        except ValidationFailed as exc:
            problems.extend(
                Detail(d.message, field=where, row=row, value=entry.source_uri, accepted=d.accepted)
                for d in exc.details
            )
            continue
        state = None
        if isinstance(source, LocalSource):
            try:
                state = source.stat()
            except FileNotFoundError:
                problems.append(Detail(f"{entry.source_uri} does not exist", field=where, row=row))
                continue
            except OSError as exc:
                problems.append(
                    Detail(f"cannot read {entry.source_uri}: {exc.strerror}", field=where, row=row)
                )
                continue
            if mode == "link" and state.dev != bag_dev:
                problems.append(
                    Detail(
                        f"{entry.source_uri} is on another file system than the bag; "
                        "mode 'link' needs both on one (use mode 'copy')",
                        field=where,
                        row=row,
                    )
                )
        elif mode == "link":
            problems.append(
                Detail(
                    f"{entry.source_uri} is in object storage and cannot be hard-linked",
                    field=where,
                    row=row,
                    accepted="mode 'copy' or 'fetch'",
                )
            )
        jobs.append(Job(entry, source, data / entry.relpath, state))
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the package's file list", problems)
    return jobs


def remove_strays(bag_dir: Path, keep: set[str]) -> None:
    """Delete payload files no entry asks for: half-written temporary files of a killed run,
    files of an earlier, different build. Then make every folder the payload needs, once,
    here rather than per file in the workers.

    One walk of ``data/`` and plain strings: for thousands of files, a ``Path`` and a ``stat``
    per entry cost more than the walk (all of this runs before the first file is read)."""
    data = bag_dir / PAYLOAD_DIR
    files, folders = _walk(str(data))
    for rel in files:
        if rel not in keep:
            os.unlink(f"{data}/{rel}")
    for rel in folders:
        if rel in keep:  # a folder where a payload file must go
            shutil.rmtree(f"{data}/{rel}")
    for rel in sorted(folders, key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(f"{data}/{rel}")  # only succeeds when empty (or already removed)
    for parent in sorted({rel.rpartition("/")[0] for rel in keep} - {""}):
        os.makedirs(f"{data}/{parent}", exist_ok=True)


def _walk(root: str) -> tuple[list[str], list[str]]:
    """Every non-folder entry (symbolic links too, not followed) and every folder under
    ``root``, as '/'-separated paths relative to it."""
    files: list[str] = []
    folders: list[str] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(f"{root}/{rel}" if rel else root))
        except FileNotFoundError:
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                folders.append(child)
                stack.append(child)
            else:
                files.append(child)
    return files, folders
