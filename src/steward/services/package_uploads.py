"""Packages from manifests uploaded to the server (``POST /api/v1/packages``).

On the server's own machine a person may name any file they can read; through the API a
caller names files on *the server's* disks and buckets, so an uploaded manifest is confined to
the places the server's ``api_source_roots`` lists: its files must lie there (after symbolic
links are followed), S3 files under an ``s3://`` place, and relative paths are read from the
``base_dir`` the caller names, itself inside one of those places. Nothing else is open to it —
not even the folder the upload is kept in.

Uploads are kept under ``STEWARD_HOME/uploads/manifests/<id>/`` (folders 0700, files 0600) for
the package made from them, which records where; an upload that made no new package (refused,
or the package already existed) is removed again at once.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from ulid import ULID

from steward.config import Settings
from steward.db.session import Database
from steward.errors import Detail, ValidationFailed
from steward.services import package_build, packages, places
from steward.services.packages import PackageSpec, PackageView

UPLOADS_FOLDER = Path("uploads") / "manifests"
SOURCE_SETTING = "STEWARD_API_SOURCE_ROOTS"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the form field it came in, the name its sender gave, its bytes."""

    field: str
    filename: str
    stream: BinaryIO


@dataclass(frozen=True)
class Created:
    package: PackageView
    created: bool
    action_id: str | None
    warnings: list[str]


def safe_name(filename: str, default: str) -> str:
    """The sender's file name without folders or odd characters (its suffix says CSV, TSV
    or XLSX, so that is kept)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", base).lstrip("._")[-100:]
    return name or default


def _write(stream: BinaryIO, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while block := stream.read(_CHUNK):
            out.write(block)
    os.chmod(path, 0o600)  # whatever the umask


def keep(settings: Settings, uploads: Sequence[Upload]) -> tuple[Path, dict[str, Path]]:
    """Save the uploads in a new private folder; returns it and each field's file."""
    parent = settings.home / UPLOADS_FOLDER
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(parent, 0o700)
    folder = parent / str(ULID())
    folder.mkdir(mode=0o700)
    saved: dict[str, Path] = {}
    try:
        for upload in uploads:
            name = safe_name(upload.filename, f"{upload.field}.csv")
            if any(p.name == name for p in saved.values()):
                name = f"{upload.field}-{name}"  # both files named alike: keep them apart
            path = folder / name
            _write(upload.stream, path)
            saved[upload.field] = path
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, saved


def confined_roots(settings: Settings, asked: Sequence[str]) -> list[str]:
    """The places an uploaded manifest may use: the server's, or the narrower ones the caller
    asked for (each inside one of the server's)."""
    roots = list(settings.api_source_roots)
    if not asked:
        return roots
    checked = []
    for text in asked:
        if not text.lower().startswith(("s3://", "file://", "/")):
            raise ValidationFailed(
                f"allow_root {text!r} is not a place",
                [Detail("not a place", field="allow_root", value=text,
                        accepted="an absolute folder or s3://bucket/prefix")],
            )  # fmt: skip
        target = places.of_text(text)
        places.require_inside(roots, target, text, setting=SOURCE_SETTING, field="allow_root")
        checked.append(str(target) if target.scheme == "file" else text.rstrip("/"))
    return checked


def _check_base(roots: Sequence[str], base_dir: str | None) -> Path | None:
    if base_dir is None:
        return None
    if not base_dir.startswith("/"):
        raise ValidationFailed(
            f"base_dir {base_dir!r} must be an absolute folder on the server",
            [Detail("not absolute", field="base_dir", value=base_dir,
                    accepted=f"a folder inside {SOURCE_SETTING}")],
        )  # fmt: skip
    locals_ = [r for r in roots if not r.lower().startswith("s3://")]
    places.require_inside(
        locals_, places.local(base_dir), base_dir, setting=SOURCE_SETTING, field="base_dir"
    )
    return Path(base_dir)


def create(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    project: str,
    spec: PackageSpec,
    uploads: Sequence[Upload],
    base_dir: str | None = None,
    build: bool = True,
) -> Created:
    """Accept a package from uploaded manifests (``manifest`` and, optionally,
    ``workflow_manifest`` in ``uploads``) and queue its build; the same package again is
    answered as it is (``created`` False), as ``steward package create`` does.

    ``spec``'s ``manifest``, ``workflow_manifest``, ``base_dir`` and ``confined_by`` are set
    here; its ``allowed_roots`` may narrow the server's places."""
    roots = confined_roots(settings, spec.allowed_roots)
    base = _check_base(roots, base_dir)
    folder, saved = keep(settings, uploads)
    keep_folder = False
    try:
        confined = replace(
            spec,
            manifest=saved["manifest"],
            workflow_manifest=saved.get("workflow_manifest"),
            base_dir=base,
            allowed_roots=tuple(roots),
            confined_by=SOURCE_SETTING,
        )
        view, new = packages.create(db, settings, actor=actor, project=project, spec=confined)
        keep_folder = new
        action_id = None
        if build and view.state in ("pending", "building"):
            view, action_id = package_build.request_build(db, actor=actor, package_id=view.id)
        warnings = packages.warnings(db, actor=actor, package_id=view.id)
        return Created(view, new, action_id, warnings)
    finally:
        if not keep_folder:
            shutil.rmtree(folder, ignore_errors=True)
