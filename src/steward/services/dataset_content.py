"""Datasets whose data files have identical content (``dataset duplicates --by-content``, and
the crawl's ``--by-content``): compared by checksum, each file hashed at most once.

Only files that *could* be identical are looked at: data files (not metadata files, not
checksum sidecars, not empty) whose size equals that of a data file of another dataset of the
same project. For each, a checksum already known is used first:

1. the one stored in the per-file record (``dataset_files.checksum``, ``md5:HEX``) — valid
   while the file keeps the size and time (or ETag) the record has, which is checked against
   the file now;
2. the object's S3 ETag when it is a plain MD5 (a single-part upload; ``HEX-N`` ETags of
   multipart uploads are not);
3. the file's ``.md5``/``.sha256`` sidecar.

Within a group of same-sized files one algorithm is compared — the one fewer files lack (MD5
when even) — and only files lacking it are read, streamed through the hash. What was computed
is stored in the record (for the file as recorded: same size and time), so a second run
hashes nothing that has not changed.

Reading storage and writing the record is for a project's stewards and admins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from steward.adapters.storage import ObjectInfo
from steward.crawl import checksums
from steward.crawl.config_model import CrawlConfig
from steward.db.models import Dataset
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.errors import Detail, Forbidden, NotFound, StewardError
from steward.redact import redact
from steward.services.access import audited, require_user, roles_in
from steward.services.dataset_storage import (
    FileRow,
    HashProgress,
    Reach,
    Skipped,
    files_of,
    places_of,
    reach_sources,
    store_checksums,
    unchanged,
)
from steward.services.datasets import current

EXAMPLES = 5
"""Identical files listed per pair of datasets (``files`` counts them all)."""


class SameFile(BaseModel):
    source: str
    path: str
    other_source: str
    other_path: str
    checksum: str


class ContentPair(BaseModel):
    project: str
    dataset: str
    other: str
    files: int
    """How many of ``dataset``'s data files have an identical file in ``other``."""
    examples: list[SameFile]


class ContentProblem(BaseModel):
    dataset: str
    source: str
    path: str
    message: str


class ContentResult(BaseModel):
    pairs: list[ContentPair] = []
    files: int = 0
    """Data files looked at (present, not empty)."""
    candidates: int = 0
    """Of those, files the size of a data file of another dataset."""
    hashed_files: int = 0
    hashed_bytes: int = 0
    reused: dict[str, int] = {}
    """Checksums that needed no reading, by where they came from: stored, etag, sidecar."""
    stored: int = 0
    """Checksums written to the record this run."""
    changed_since_crawl: int = 0
    not_compared: int = 0
    """Candidates with no checksum that could not be read (see problems)."""
    problems: list[ContentProblem] = []
    skipped_sources: list[dict[str, str]] = []


@dataclass
class _Candidate:
    row: FileRow
    project: str
    accession: str
    known: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    info: ObjectInfo | None = None
    valid: bool = True
    """The record still describes the file (a stored checksum may be used and stored)."""


def _scope(db: Database, actor: str | None, project: str | None) -> dict[str, tuple[str, str]]:
    """Dataset id → (project, accession) of what the caller may compare: every dataset they
    may see (withdrawn ones aside), in projects where they are staff."""
    with audited(db, actor=actor, action="compare-content", project_id=project), db.read() as s:
        user = require_user(s, actor)
        q = current(s, user, project, Dataset.id, Dataset.project_id, Dataset.accession)
        rows = {r.id: (r.project_id, r.accession) for r in s.execute(q)}
        projects = sorted({p for p, _ in rows.values()})
        lacking = [p for p in projects if not roles_in(s, user, p) & STAFF]
        if lacking:
            names = ", ".join(lacking)
            raise Forbidden(
                f"{user.id} may not compare the content of {names}'s datasets: it reads their "
                "storage and records checksums, which needs the steward or admin role"
                + ("" if project else "; name a project you coordinate with --project"),
                [Detail("needs steward or admin", field="project", value=names)],
            )
    return rows


def _sidecars(files: list[FileRow]) -> dict[tuple[str, str, str], list[tuple[str, FileRow]]]:
    """(dataset, source, data path) → its sidecars, by algorithm."""
    out: dict[tuple[str, str, str], list[tuple[str, FileRow]]] = defaultdict(list)
    for f in files:
        side = checksums.sidecar_of(f.path)
        if side is not None:
            out[(f.dataset_id, f.source, side[0])].append((side[1], f))
    return out


def _problem(result: ContentResult, c: _Candidate, message: str) -> None:
    result.problems.append(
        ContentProblem(dataset=c.accession, source=c.row.source, path=c.row.path, message=message)
    )


def _known(
    c: _Candidate,
    reach: Reach | None,
    sidecars: list[tuple[str, FileRow]],
    result: ContentResult,
) -> bool:
    """Fill in what is known of the candidate without reading it; False when it is gone."""
    store = reach.store if reach is not None else None
    if store is not None:
        try:
            c.info = store.stat(c.row.path)
        except NotFound:
            _problem(result, c, "gone since the last crawl")
            return False
        except StewardError as exc:
            _problem(result, c, redact(exc.message))
    c.valid = c.info is None or unchanged(c.row, c.info)
    if not c.valid:
        result.changed_since_crawl += 1
    recorded = checksums.parse_stored(c.row.checksum) if c.valid else None
    if recorded is not None:
        c.known[recorded[0]] = recorded[1]
        c.origin[recorded[0]] = "stored"
    etag = checksums.etag_md5(c.info.etag if c.info is not None else c.row.etag)
    if etag is not None and "md5" not in c.known and (c.info is not None or c.valid):
        c.known["md5"], c.origin["md5"] = etag, "etag"
    for algorithm, side in sorted(sidecars, key=lambda x: x[0]):
        if algorithm in c.known or store is None:
            continue
        try:
            data = store.read(side.path, 0, checksums.SIDECAR_LIMIT + 1)
            c.known[algorithm] = checksums.parse_sidecar(data, c.row.path, algorithm)
            c.origin[algorithm] = "sidecar"
        except checksums.SidecarError as exc:
            _problem(result, c, f"its sidecar {side.path} was not used: {redact(str(exc))}")
        except StewardError as exc:
            _problem(result, c, f"its sidecar {side.path} was not used: {redact(exc.message)}")
    return True


def _algorithm(group: list[_Candidate]) -> str:
    """The algorithm fewer files of the group lack (MD5 when even)."""
    order = [checksums.PREFERRED, *(a for a in checksums.ALGORITHMS if a != checksums.PREFERRED)]
    return min(order, key=lambda a: (sum(1 for c in group if a not in c.known), order.index(a)))


def _hash(
    c: _Candidate,
    algorithm: str,
    reach: Reach | None,
    progress: HashProgress,
    result: ContentResult,
    computed: list[tuple[FileRow, str]],
) -> None:
    store = reach.store if reach is not None else None
    if store is None:
        result.not_compared += 1
        why = reach.why_not if reach is not None and reach.why_not else "no readable place"
        _problem(result, c, f"not compared: {why}")
        return
    try:
        with store.open_reader(c.row.path) as stream:
            digests = checksums.digest_stream(stream, [algorithm], lambda n: progress.step(n, 0))
    except (StewardError, OSError) as exc:
        result.not_compared += 1
        why = redact(exc.message) if isinstance(exc, StewardError) else exc.strerror or str(exc)
        _problem(result, c, f"not compared: {why}")
        return
    progress.step(0, 1)
    result.hashed_files += 1
    result.hashed_bytes += digests.size
    c.known[algorithm] = digests.values[algorithm]
    c.origin[algorithm] = "hashed"
    if c.valid and c.info is not None:
        computed.append((c.row, checksums.stored(algorithm, digests.values[algorithm])))


def _pairs(groups: list[tuple[str, list[_Candidate]]], examples: int) -> list[ContentPair]:
    found: dict[tuple[str, str, str], list[SameFile]] = defaultdict(list)
    for algorithm, group in groups:
        by_digest: dict[str, list[_Candidate]] = defaultdict(list)
        for c in group:
            if algorithm in c.known:
                by_digest[c.known[algorithm]].append(c)
        for digest, same in by_digest.items():
            for a in same:
                for b in same:
                    if a.project != b.project or a.accession >= b.accession:
                        continue
                    found[(a.project, a.accession, b.accession)].append(
                        SameFile(
                            source=a.row.source,
                            path=a.row.path,
                            other_source=b.row.source,
                            other_path=b.row.path,
                            checksum=checksums.stored(algorithm, digest),
                        )
                    )
    return [
        ContentPair(
            project=project,
            dataset=first,
            other=second,
            files=len({(f.source, f.path) for f in files}),
            examples=sorted(files, key=lambda f: (f.path, f.other_path))[:examples],
        )
        for (project, first, second), files in sorted(found.items())
    ]


def compare_content(
    db: Database,
    *,
    actor: str | None,
    project: str | None = None,
    config: CrawlConfig | None = None,
    environ: Mapping[str, str] | None = None,
    progress: HashProgress | None = None,
    examples: int = EXAMPLES,
) -> ContentResult:
    """Pairs of datasets (of one project) with identical data files, and what it took: see
    the module docstring. ``project`` None: every project the caller coordinates and sees."""
    progress = progress or HashProgress()
    scope = _scope(db, actor, project)
    ids = sorted(scope)
    with db.read() as s:
        files = files_of(s, ids, present_only=True)
        places = places_of(s, ids)
    reaches = reach_sources([p for p in places if p.present] or places, config, environ)
    result = ContentResult()
    skipped = Skipped({n: r.why_not for n, r in reaches.items() if r.why_not})
    result.skipped_sources = skipped.as_list()
    sidecars = _sidecars(files)
    by_size: dict[int, list[_Candidate]] = defaultdict(list)
    for f in files:
        reach = reaches.get(f.source)
        if f.size == 0 or (reach is not None and reach.file_kind(f.path) != "data"):
            continue
        if reach is None and checksums.sidecar_of(f.path) is not None:
            continue
        result.files += 1
        project_id, accession = scope[f.dataset_id]
        by_size[f.size].append(_Candidate(f, project_id, accession))
    groups: list[list[_Candidate]] = []
    for group in by_size.values():
        owners = {(c.project, c.row.dataset_id) for c in group}
        if len(owners) > 1 and len({p for p, _ in owners}) < len(owners):
            live = [
                c
                for c in group
                if _known(
                    c,
                    reaches.get(c.row.source),
                    sidecars.get((c.row.dataset_id, c.row.source, c.row.path), []),
                    result,
                )
            ]
            result.candidates += len(group)
            groups.append(live)
    plans = [(_algorithm(g), g) for g in groups if g]
    todo = [(a, c) for a, g in plans for c in g if a not in c.known]
    progress.begin(sum(c.row.size for _, c in todo), len(todo))
    computed: list[tuple[FileRow, str]] = []
    for algorithm, c in todo:
        _hash(c, algorithm, reaches.get(c.row.source), progress, result, computed)
    reused: dict[str, int] = defaultdict(int)
    for algorithm, group in plans:
        for c in group:
            origin = c.origin.get(algorithm)
            if origin is not None and origin != "hashed":
                reused[origin] += 1
    result.reused = dict(sorted(reused.items()))
    if computed:
        with db.transaction() as s:
            result.stored = store_checksums(s, computed)
    result.pairs = _pairs(plans, examples)
    return result
