"""Reading a dataset's metadata files with its source's extractors, recording every file's fate.

For each file some chosen extractor wants (by name): read it (once, however many extractors
want it), decode it (:func:`~steward.crawl.decoding.decode`: UTF-8, then the source's
fallback), hand the text to each extractor. Every (file, extractor) pair gets a
:class:`FileReport` — ``ok``, ``decoded-with-fallback``, ``undecodable``, ``unreadable``,
``too-large`` or ``invalid`` — so the crawl summary and the dataset can list each file that
needed a fallback or could not be read, which the seed tracker silently skipped.

Fields from several files are merged: lists are united in order, and for single values the
first file (by path) wins, with a note naming the file that disagreed. An extractor that raises
anything other than :class:`~steward.crawl.extractors.base.ExtractionFailed` (a site plugin's
bug) is recorded as ``invalid`` with the exception's type, and the crawl goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from steward.crawl.decoding import Decoded, Undecodable, decode
from steward.crawl.extractors.base import ExtractionFailed, Extractor, any_wants
from steward.crawl.model import FoundFile
from steward.errors import StewardError
from steward.redact import redact

MAX_METADATA_BYTES = 32 << 20
"""A metadata file larger than this is not read (``too-large``): it is data, not metadata."""

Reader = Callable[[FoundFile], bytes]


class FileStatus(StrEnum):
    OK = "ok"
    FALLBACK = "decoded-with-fallback"
    UNDECODABLE = "undecodable"
    UNREADABLE = "unreadable"
    TOO_LARGE = "too-large"
    INVALID = "invalid"


@dataclass(frozen=True)
class FileReport:
    path: str
    extractor: str
    status: FileStatus
    encoding: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if k == "status" else v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DatasetMetadata:
    fields: dict[str, Any]
    files: tuple[FileReport, ...]
    notes: tuple[str, ...]

    @property
    def needed_fallback(self) -> tuple[str, ...]:
        return tuple(sorted({r.path for r in self.files if r.status is FileStatus.FALLBACK}))

    @property
    def unreadable(self) -> tuple[str, ...]:
        """Files that gave nothing: unreadable, undecodable, too large or invalid."""
        bad = {FileStatus.OK, FileStatus.FALLBACK}
        return tuple(sorted({r.path for r in self.files if r.status not in bad}))


def _merge(
    fields: dict[str, Any],
    new: Mapping[str, Any],
    path: str,
    origin: dict[str, str],
    notes: list[str],
) -> None:
    for key, value in new.items():
        if key not in fields:
            fields[key] = value
            origin[key] = path
        elif isinstance(fields[key], list) and isinstance(value, list):
            fields[key] = fields[key] + [v for v in value if v not in fields[key]]
        elif fields[key] != value:
            notes.append(
                f"{path}: {key} differs from {origin[key]}; the value from {origin[key]} is kept"
            )


def _read(file: FoundFile, read: Reader, limit: int) -> tuple[bytes | None, FileStatus, str | None]:
    if file.size > limit:
        return (
            None,
            FileStatus.TOO_LARGE,
            f"{file.size} bytes; metadata files over {limit} are not read",
        )
    try:
        data = read(file)
    except StewardError as exc:
        return None, FileStatus.UNREADABLE, redact(str(exc))
    except OSError as exc:
        return None, FileStatus.UNREADABLE, redact(exc.strerror or str(exc))
    if len(data) > limit:
        return None, FileStatus.TOO_LARGE, f"more than {limit} bytes; not read"
    return data, FileStatus.OK, None


def extract_metadata(
    files: Sequence[FoundFile],
    extractors: Sequence[Extractor],
    read: Reader,
    *,
    fallback: str | None = None,
    limit: int = MAX_METADATA_BYTES,
) -> DatasetMetadata:
    """Run ``extractors`` over the ``files`` they want; ``read`` fetches a file's bytes."""
    fields: dict[str, Any] = {}
    origin: dict[str, str] = {}
    notes: list[str] = []
    reports: list[FileReport] = []
    wanted = any_wants(extractors)
    for file in sorted((f for f in files if wanted(f.path)), key=lambda f: f.path):
        wanting = [e for e in extractors if e.wants(file.path)]
        data, status, message = _read(file, read, limit)
        decoded: Decoded | None = None
        if data is not None:
            try:
                decoded = decode(data, fallback)
            except Undecodable as exc:
                status, message = FileStatus.UNDECODABLE, str(exc)
        for extractor in wanting:
            if decoded is None:
                reports.append(FileReport(file.path, extractor.name, status, message=message))
                continue
            ok = FileStatus.FALLBACK if decoded.fallback else FileStatus.OK
            try:
                result = extractor.extract(decoded.text, path=file.path)
            except ExtractionFailed as exc:
                reports.append(
                    FileReport(
                        file.path,
                        extractor.name,
                        FileStatus.INVALID,
                        decoded.encoding,
                        redact(str(exc)),
                    )
                )
                continue
            except Exception as exc:  # a plugin's bug must not stop the crawl
                reports.append(
                    FileReport(
                        file.path,
                        extractor.name,
                        FileStatus.INVALID,
                        decoded.encoding,
                        redact(f"the extractor failed: {type(exc).__name__}: {exc}"),
                    )
                )
                continue
            reports.append(FileReport(file.path, extractor.name, ok, decoded.encoding))
            notes.extend(f"{file.path}: {note}" for note in result.notes)
            _merge(fields, result.fields, file.path, origin, notes)
    return DatasetMetadata(fields, tuple(reports), tuple(notes))
