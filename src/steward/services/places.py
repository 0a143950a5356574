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
