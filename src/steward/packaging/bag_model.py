"""The values the bag builder takes and returns, apart from the code that moves bytes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal

from steward.errors import StewardError

Mode = Literal["copy", "link", "fetch"]
MODES: tuple[Mode, ...] = ("copy", "link", "fetch")


@dataclass(frozen=True)
class BagEntry:
    """One payload file to be: its place under ``data/`` and where its bytes are now.

    ``size``, ``sha256`` and ``md5`` are what the manifest claims; when given they are checked
    against what is actually read, and a difference fails the file (naming both values).
    ``metadata`` carries sample_id, library_id, subject_id, project_id, data_type, run_id, lane
    and workflow_name for the RO-Crate.
    """

    relpath: str  # under data/, '/'-separated, already laid out by the manifest module
    source_uri: str  # file:///abs/path or s3://bucket/key
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltFile:
    """One payload file as it is in the bag (or, in fetch mode, as fetch.txt promises it)."""

    relpath: str  # under data/
    size: int
    sha256: str
    md5: str
    source_uri: str
    source_etag: str | None = None  # S3 sources
    source_mtime_ns: int | None = None  # local sources
    fetch_url: str | None = None  # fetch mode: the URL written to fetch.txt
    metadata: Mapping[str, str] = field(default_factory=dict)
    reused: bool = False  # taken from the journal of an interrupted earlier run


@dataclass(frozen=True)
class BagInfo:
    """What bag-info.txt and the RO-Crate root say about the package as a whole."""

    name: str
    package_id: str
    source_organisation: str
    created_by: str
    created_at: datetime  # timezone-aware; also the Bagging-Date, so re-runs write the same bag
    description: str = ""
    license: str | None = None  # a URL or SPDX id for the RO-Crate root
    extra: Mapping[str, str] = field(default_factory=dict)  # more bag-info.txt labels


@dataclass(frozen=True)
class BagSummary:
    bag_dir: Path
    payload_files: int  # including data/ro-crate-metadata.json
    payload_bytes: int
    payload_oxum: str
    fetch_files: int  # payload files listed in fetch.txt rather than present
    tag_files: tuple[str, ...]  # every tag file, as listed in the tag manifests
    bag_size: str


class BuildCancelled(StewardError):
    """The caller's ``should_stop`` asked the build to stop; work done so far is kept."""

    code: ClassVar[str] = "cancelled"
    title: ClassVar[str] = "Stopped on request"
    http_status: ClassVar[int] = 409
