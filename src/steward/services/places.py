"""Places Steward never writes into on a person's say: its own folders and a package's sources.

A push into the package's own bag corrupted it; one into ``STEWARD_HOME`` could overwrite the
database or another bag; one into the folders a package was read from mixes copies into the
originals. Every destination a person gives (``share push --to``, ``share presign -o``,
``report -o``) is compared with these places after symbolic links are resolved, so a link to
the bag is refused like the bag itself, and an S3 destination is compared with the package's
S3 sources by bucket and key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from steward.adapters.storage import Store
from steward.adapters.store_local import LocalStore
from steward.config import Settings
from steward.errors import Detail, ValidationFailed

SHARES_FOLDER = "shares"
"""Under STEWARD_HOME: where download scripts go by default (the one place there a script
may be written)."""


@dataclass(frozen=True)
class Place:
    """A folder (or file) as a path of parts: local (real path) or in one S3 bucket."""

    scheme: str  # "file" or "s3"
    bucket: str  # "" for local places
    parts: tuple[str, ...]

    def contains(self, other: Place) -> bool:
        """``other`` is this place or below it."""
        return (
            self.scheme == other.scheme
            and self.bucket == other.bucket
            and other.parts[: len(self.parts)] == self.parts
        )

    def overlaps(self, other: Place) -> bool:
        return self.contains(other) or other.contains(self)

    def __str__(self) -> str:
        if self.scheme == "s3":
            return "/".join((f"s3://{self.bucket}", *self.parts))
        return "/" + "/".join(self.parts)


@dataclass(frozen=True)
class Protected:
    place: Place
    what: str  # e.g. "STEWARD_HOME"


def local(path: Path | str) -> Place:
    """A local path with every symbolic link resolved (as far as the path exists)."""
    real = os.path.realpath(os.path.abspath(os.fspath(path)))
    return Place("file", "", PurePosixPath(real).parts[1:])


def of_store(store: Store) -> Place:
    if isinstance(store, LocalStore):
        return local(store.root)
    bucket, _, prefix = store.url.removeprefix("s3://").partition("/")
    return Place("s3", bucket, tuple(p for p in prefix.split("/") if p))


def source_folder(uri: str) -> Place | None:
    """The folder holding a package file's source (``file://`` or ``s3://``)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return local(Path(unquote(parts.path)).parent)
    if scheme == "s3":
        key = PurePosixPath(unquote(parts.path).lstrip("/")).parent
        return Place("s3", parts.netloc, tuple(p for p in key.parts if p not in ("", ".")))
    return None


def steward_places(settings: Settings) -> list[Protected]:
    return [
        Protected(local(settings.resolved_packages_dir), "the packages folder (every bag)"),
        Protected(local(settings.home), "STEWARD_HOME (Steward's database and bags)"),
    ]


def source_places(uris: Iterable[str]) -> list[Protected]:
    folders = {f for f in map(source_folder, set(uris)) if f is not None}
    return [
        Protected(f, "a folder this package's files come from") for f in sorted(folders, key=str)
    ]


def _refuse(target: Place, shown: str, hits: Sequence[Protected], field: str) -> None:
    if not hits:
        return
    accepted = "a place outside STEWARD_HOME, the packages folder and the package's sources"
    raise ValidationFailed(
        f"{field} {shown!r}: Steward does not write there",
        [
            Detail(
                f"{'is' if hit.place.contains(target) else 'contains'} {hit.what}: {hit.place}",
                field=field,
                value=shown,
                accepted=accepted,
            )
            for hit in hits
        ],
    )


def refuse_push_target(
    settings: Settings, dest: Store, shown: str, source_uris: Iterable[str], *, field: str
) -> None:
    """The folder a bag is pushed into may neither lie in nor hold a protected place."""
    target = of_store(dest)
    protected = steward_places(settings) + source_places(source_uris)
    _refuse(target, shown, [p for p in protected if p.place.overlaps(target)], field)


def refuse_script_target(
    settings: Settings, path: Path, source_uris: Iterable[str], *, field: str
) -> None:
    """A download script may go anywhere but into a bag, a source folder, or STEWARD_HOME
    outside its ``shares`` folder (where scripts go by default)."""
    target = local(path)
    shares = local(settings.home / SHARES_FOLDER)
    hits = [
        p
        for p in steward_places(settings) + source_places(source_uris)
        if p.place.contains(target)
        and not (p.what.startswith("STEWARD_HOME") and shares.contains(target))
    ]
    _refuse(target, str(path), hits, field)


def refuse_steward_file(settings: Settings, path: Path, *, field: str) -> None:
    """A file written on a person's say (a report) may not land inside a bag."""
    target = local(path)
    packages = steward_places(settings)[0]
    _refuse(target, str(path), [packages] if packages.place.contains(target) else [], field)


def of_root(root: str) -> Place:
    """A place of ``api_source_roots``/``api_push_roots`` (already checked by the settings)."""
    if root.lower().startswith("s3://"):
        bucket, _, prefix = root[5:].partition("/")
        return Place("s3", bucket, tuple(p for p in prefix.split("/") if p))
    return local(root.removeprefix("file://"))


def of_text(text: str) -> Place:
    """Where a person's ``s3://…``, ``file:///…`` or absolute path points."""
    if text.lower().startswith("s3://"):
        return of_root(text)
    return local(unquote(urlsplit(text).path) if text.startswith("file://") else text)


def require_inside(
    roots: Sequence[str],
    target: Place,
    shown: str,
    *,
    setting: str,
    field: str,
) -> None:
    """Refuse ``target`` unless it lies in one of ``roots`` (a server setting's places): what
    the API may touch on a caller's say. Empty ``roots`` refuse everything."""
    places = [of_root(r) for r in roots]
    if any(p.contains(target) for p in places):
        return
    listed = ", ".join(str(p) for p in places)
    why = (
        f"this server's {setting} lists no place at all, so nothing is open to the API"
        if not places
        else f"it is not inside any place {setting} lists"
    )
    raise ValidationFailed(
        f"{field} {shown!r}: {why}",
        [
            Detail(
                f"outside {setting}" + ("" if target.scheme == "s3" else f" (it is {target})"),
                field=field,
                value=shown,
                accepted=f"a place inside {listed}"
                if places
                else f"ask the server's administrator to set {setting}",
            )
        ],
    )
