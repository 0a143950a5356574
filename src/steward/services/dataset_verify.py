"""``steward dataset verify``: recompute each data file's checksum and compare it with its
sidecar (``file.bam.md5``, ``file.bam.sha256``), as SODAR's users lay their data out.

Every sidecar of the dataset's present files is read and its data file streamed through the
hash (once, however many sidecars it has). What was found is one ``verified`` event on the
dataset — counts, and the mismatches and problems (the first
:data:`~steward.services.datasets.VERIFY_LISTED` of each) — so every mismatch is in the
dataset's history; and each checked file's record gets its outcome (``verified``,
``mismatch``, ``unreadable``) and the checksum computed (``md5:HEX``), in the same
transaction. A checksum is stored only for the file the record describes (same size and
time, or ETag): one rewritten since the last crawl is still compared, but its checksum waits
for the crawl to see it.

Only a project's stewards and admins may verify (it reads storage and writes the record);
whoever may not see the dataset hears "not found", as for an unknown accession. Folder sources
are read as they are; s3 sources need their entry in the sources config (endpoint and the
variables holding the keys); endpoint sources have no files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm import Session

from steward.adapters.storage import ObjectInfo, Store
from steward.crawl import checksums
from steward.crawl.config_model import CrawlConfig
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.errors import Detail, NotFound, StewardError, ValidationFailed
from steward.redact import redact
from steward.services import subjects
from steward.services.access import audited
from steward.services.dataset_storage import (
    AS_RECORDED,
    FILE_KEY,
    FILES,
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
from steward.services.datasets import DATASET, VERIFY_LISTED, Verified, resolve


class Mismatch(BaseModel):
    source: str
    path: str
    algorithm: str
    expected: str
    actual: str
    sidecar: str


class FileProblem(BaseModel):
    kind: str
    """``missing`` (a sidecar without its data file), ``bad-sidecar`` or ``unreadable``."""
    source: str
    path: str
    message: str


class VerifyResult(BaseModel):
    dataset: str
    """Its accession."""
    id: str
    project_id: str
    checked: int = 0
    matched: int = 0
    mismatched: int = 0
    missing: int = 0
    bad_sidecars: int = 0
    unreadable: int = 0
    without_sidecar: int = 0
    files_read: int = 0
    bytes_read: int = 0
    stored: int = 0
    """Checksums written to the per-file record."""
    changed_since_crawl: int = 0
    """Files compared whose size or time differ from the record (checksum not stored)."""
    skipped_sources: list[dict[str, str]] = []
    mismatches: list[Mismatch] = []
    problems: list[FileProblem] = []

    @property
    def all_match(self) -> bool:
        """Every sidecar matched its data file (the command's exit code 0)."""
        return not (self.mismatched or self.missing or self.bad_sidecars or self.unreadable)


@dataclass
class _Check:
    """One data file and the sidecars that describe it."""

    source: str
    data_path: str
    sidecars: dict[str, FileRow] = field(default_factory=dict)
    """Algorithm → sidecar."""
    expected: dict[str, str] = field(default_factory=dict)
    row: FileRow | None = None


@dataclass
class _Write:
    outcome: str
    checksum: str | None
    row: FileRow


def _plan(files: list[FileRow], reaches: Mapping[str, Reach]) -> tuple[list[_Check], int]:
    """The checks to make per data file, and how many data files have no sidecar."""
    checks: dict[tuple[str, str], _Check] = {}
    by_key = {(f.source, f.path): f for f in files}
    for f in files:
        side = checksums.sidecar_of(f.path)
        if side is None:
            continue
        data_path, algorithm = side
        check = checks.setdefault((f.source, data_path), _Check(f.source, data_path))
        check.sidecars[algorithm] = f
        check.row = by_key.get((f.source, data_path))
    described = set(checks)
    without = sum(
        1
        for f in files
        if (f.source, f.path) not in described
        and checksums.sidecar_of(f.path) is None
        and f.source in reaches
        and reaches[f.source].file_kind(f.path) == "data"
    )
    return sorted(checks.values(), key=lambda c: (c.source, c.data_path)), without


def _problem(result: VerifyResult, kind: str, source: str, path: str, message: str) -> None:
    result.problems.append(FileProblem(kind=kind, source=source, path=path, message=message))


def _read_sidecars(store: Store, check: _Check, result: VerifyResult) -> None:
    for algorithm, side in sorted(check.sidecars.items()):
        result.checked += 1
        try:
            data = store.read(side.path, 0, checksums.SIDECAR_LIMIT + 1)
            check.expected[algorithm] = checksums.parse_sidecar(data, check.data_path, algorithm)
        except checksums.SidecarError as exc:
            result.bad_sidecars += 1
            _problem(result, "bad-sidecar", side.source, side.path, redact(str(exc)))
        except StewardError as exc:
            result.bad_sidecars += 1
            _problem(result, "bad-sidecar", side.source, side.path, redact(exc.message))
        except OSError as exc:
            result.bad_sidecars += 1
            _problem(result, "bad-sidecar", side.source, side.path, exc.strerror or str(exc))


def _digest(
    store: Store, row: FileRow, algorithms: list[str], progress: HashProgress
) -> tuple[ObjectInfo, checksums.Digests]:
    info = store.stat(row.path)
    with store.open_reader(row.path) as stream:
        digests = checksums.digest_stream(stream, algorithms, lambda n: progress.step(n, 0))
    progress.step(0, 1)
    return info, digests


def _check(
    store: Store,
    check: _Check,
    result: VerifyResult,
    progress: HashProgress,
    writes: dict[tuple[str, str], _Write],
) -> None:
    _read_sidecars(store, check, result)
    if not check.expected:
        return
    n = len(check.expected)
    row = check.row
    if row is None or not row.present:
        result.missing += n
        _problem(
            result,
            "missing",
            check.source,
            check.data_path,
            "its sidecar is here, the data file is not",
        )
        return
    try:
        info, digests = _digest(store, row, sorted(check.expected), progress)
    except NotFound:
        result.missing += n
        _problem(result, "missing", check.source, row.path, "gone since the last crawl")
        return
    except (StewardError, OSError) as exc:
        result.unreadable += n
        why = redact(exc.message) if isinstance(exc, StewardError) else exc.strerror or str(exc)
        _problem(result, "unreadable", check.source, row.path, why)
        writes[(row.source, row.path)] = _Write(domain.FILE_UNREADABLE, None, row)
        return
    result.files_read += 1
    result.bytes_read += digests.size
    bad = False
    for algorithm, expected in sorted(check.expected.items()):
        actual = digests.values[algorithm]
        if actual == expected:
            result.matched += 1
            continue
        bad = True
        result.mismatched += 1
        result.mismatches.append(
            Mismatch(
                source=row.source,
                path=row.path,
                algorithm=algorithm,
                expected=expected,
                actual=actual,
                sidecar=check.sidecars[algorithm].path,
            )
        )
    same = unchanged(row, info)
    if not same:
        result.changed_since_crawl += 1
    keep = checksums.PREFERRED if checksums.PREFERRED in digests.values else min(digests.values)
    checksum = checksums.stored(keep, digests.values[keep]) if same else None
    outcome = domain.FILE_MISMATCH if bad else domain.FILE_VERIFIED
    writes[(row.source, row.path)] = _Write(outcome, checksum, row)


def _payload(result: VerifyResult) -> Verified:
    return Verified(
        checked=result.checked,
        matched=result.matched,
        mismatched=result.mismatched,
        missing=result.missing,
        bad_sidecars=result.bad_sidecars,
        unreadable=result.unreadable,
        without_sidecar=result.without_sidecar,
        bytes_read=result.bytes_read,
        mismatches=[m.model_dump() for m in result.mismatches[:VERIFY_LISTED]],
        problems=[p.model_dump() for p in result.problems[:VERIFY_LISTED]],
        skipped_sources=result.skipped_sources,
    )


def store_outcomes(
    s: Session,
    dataset_id: str,
    writes: Mapping[tuple[str, str], _Write],
    reset: list[tuple[str, str]],
) -> int:
    """Write outcomes and checksums; the files in ``reset`` (verified before, without a
    sidecar now) go back to ``present``. Returns how many checksums were stored."""
    conn = s.connection()
    # The verdict is of the content that was read: a record the crawl changed meanwhile
    # (another size, time or ETag) keeps the crawl's word. No IN (…) here: these statements
    # run once per row (executemany), which cannot expand a list.
    rows = [
        {
            "d": dataset_id,
            "s": src,
            "p": path,
            "o": w.outcome,
            "w_size": w.row.size,
            "w_mtime": w.row.mtime_ns,
            "w_etag": w.row.etag,
        }
        for (src, path), w in sorted(writes.items())
    ]
    if rows:
        conn.execute(
            update(FILES)
            .where(FILE_KEY, AS_RECORDED, *(FILES.c.outcome != a for a in domain.ABSENT))
            .values(outcome=bindparam("o")),
            rows,
        )
    if reset:
        verdicts = or_(*(FILES.c.outcome == v for v in domain.VERIFY_OUTCOMES))
        conn.execute(
            update(FILES).where(FILE_KEY, verdicts).values(outcome=domain.FILE_PRESENT),
            [{"d": dataset_id, "s": src, "p": path} for src, path in reset],
        )
    return store_checksums(
        s, [(w.row, w.checksum) for _, w in sorted(writes.items()) if w.checksum is not None]
    )


def verify(
    db: Database,
    *,
    actor: str | None,
    dataset: str,
    project: str | None = None,
    config: CrawlConfig | None = None,
    environ: Mapping[str, str] | None = None,
    progress: HashProgress | None = None,
) -> VerifyResult:
    """Verify one dataset's sidecars (see the module docstring)."""
    progress = progress or HashProgress()
    with db.read() as s:
        sid = resolve(s, actor, dataset, project=project)
    with (
        audited(db, actor=actor, action=domain.VERIFY, subject_kind=DATASET.name, subject_id=sid),
        db.read() as s,
    ):
        row, ctx = subjects.visible(s, DATASET, actor, sid)
        DATASET.workflow.decide(domain.VERIFY, row.state, ctx)
        result = VerifyResult(dataset=row.accession, id=row.id, project_id=row.project_id)
        files = files_of(s, [sid], present_only=True)
        places = places_of(s, [sid])
    reaches = reach_sources(places, config, environ)
    skipped = Skipped()
    by_source: dict[str, list[FileRow]] = defaultdict(list)
    for f in files:
        by_source[f.source].append(f)
    for name in sorted(by_source):
        reach = reaches.get(name)
        if reach is None or reach.store is None:
            skipped.sources[name] = (
                reach.why_not if reach and reach.why_not else f"no place of source {name!r}"
            )
    readable = {n: fs for n, fs in by_source.items() if n not in skipped.sources}
    if skipped.sources and not readable:
        names = ", ".join(sorted(skipped.sources))
        raise ValidationFailed(
            f"{result.dataset}: its files cannot be verified here (source {names}): verify "
            "works on folder sources, and on s3 sources named in the sources config",
            [
                Detail(why, field="source", value=src, accepted="a folder or s3 source")
                for src, why in sorted(skipped.sources.items())
            ],
        )
    result.skipped_sources = skipped.as_list()
    checks: list[_Check] = []
    for _, group in sorted(readable.items()):
        planned, without = _plan(group, reaches)
        checks += planned
        result.without_sidecar += without
    todo = [c.row for c in checks if c.row is not None and c.row.present]
    progress.begin(sum(r.size for r in todo), len(todo))
    writes: dict[tuple[str, str], _Write] = {}
    for check in checks:
        store = reaches[check.source].store
        assert store is not None
        _check(store, check, result, progress, writes)
    with (
        audited(
            db,
            actor=actor,
            action=domain.VERIFY,
            project_id=result.project_id,
            subject_kind=DATASET.name,
            subject_id=sid,
        ),
        db.transaction() as s,
    ):
        row, ctx = subjects.visible(s, DATASET, actor, sid)
        subjects.apply(s, DATASET, row, ctx, domain.VERIFY, _payload(result))
        reset = [
            (f.source, f.path)
            for f in files
            if f.source in readable
            and f.outcome in domain.VERIFY_OUTCOMES
            and (f.source, f.path) not in writes
        ]
        result.stored = store_outcomes(s, sid, writes, reset)
    return result


def as_json(result: VerifyResult) -> dict[str, Any]:
    return {**result.model_dump(mode="json"), "all_match": result.all_match}
