"""Share use cases: push a built package somewhere, or hand it out as presigned links.

A push checks the destination before any data moves, sends and verifies every object, and
records each one in the share registry as it lands. Pushing the same package to the same
place again continues the earlier share (objects already verified are skipped) instead of
starting a duplicate — the seed's retries and double clicks made new jobs every time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from steward import outfiles
from steward.adapters import transfer as tx
from steward.adapters.storage import Store, open_store, parse_destination
from steward.config import Settings
from steward.db.models import Package, PackageFile, Share, ShareObject
from steward.db.session import Database
from steward.domain import shares as domain
from steward.domain.workflow import Context
from steward.errors import (
    Detail,
    InvalidTransition,
    ValidationFailed,
)
from steward.ids import new_id
from steward.jobs import outbox, runner
from steward.packaging import script
from steward.packaging.sources import S3Source, parse_source
from steward.services import ledger, places, subjects
from steward.services import packages as pkgs
from steward.services.access import audited, not_found
from steward.services.kinds import (
    COMMENT,
    REASON,
    Filter,
    FilterSpec,
    Kind,
    Payload,
    Policy,
    job_commands,
    register,
)
from steward.services.timeline import TimelineEntry
from steward.timeutil import utcnow

MAX_LINK_LIFETIME = timedelta(days=7)  # the longest an S3 (SigV4) presigned URL may live
REGISTRY_BATCH = 200


class ShareView(BaseModel):
    id: str
    project_id: str
    package_id: str
    method: str
    destination: str
    created_by: str
    sender: str | None
    failure_reason: str | None
    object_count: int | None
    bytes_total: int | None
    links_expire_at: datetime | None
    script_path: str | None
    state: str
    version: int
    created_at: datetime
    updated_at: datetime
    state_since: datetime
    completed_at: datetime | None


class ShareObjectView(BaseModel):
    key: str
    size: int
    sha256: str
    etag: str | None
    skipped: bool
    verified_at: datetime


class ShareDetail(BaseModel):
    share: ShareView
    timeline: list[TimelineEntry]
    time_in_state: dict[str, float]
    current_state_for: float | None
    available_actions: list[str]
    registered_objects: int
    registered_bytes: int


@dataclass
class PushProgress:
    start: Callable[[int, int], None] | None = None  # (total bytes, total objects)
    advance: Callable[[int, int], None] | None = None  # (bytes, objects)


def _job_context(s: Session, actor: str | None, row: Share) -> Context:
    return pkgs.context(s, actor, row.project_id)


class PushFinished(Payload):
    object_count: int
    bytes_total: int
    skipped: int | None = None
    script_path: str | None = None


SHARE = register(
    Kind(
        workflow=domain.WORKFLOW,
        model=Share,
        project=domain.project,
        label="share",
        id_field="share",
        prefix="shr",
        view=ShareView,
        # Staff, reviewers and viewers of a project see its shares; requesters do not.
        policy=Policy(readers=domain.READERS),
        filters=FilterSpec(
            equals={"package": "package_id"},
            choices={"method": domain.METHODS},
            contains={"destination": "destination"},
            ranges={"created": "created_at", "completed": "completed_at"},
        ),
        commands={
            "retry": REASON,
            "abort": REASON,
            "comment": COMMENT,
            **job_commands(PushFinished),
        },
        docs="packages.md",
    )
)
ShareFilter = SHARE.filter
KIND = SHARE  # the engine's name for it


PUSH_JOB = runner.LongJob(
    kind=KIND,
    owner_field="sender",
    running="running",
    failable=("pending", "running"),
    noun="push",
    done_by="sent",
    context=_job_context,
    action="share.push",
)


def view(row: Share) -> ShareView:
    return ShareView.model_validate(row, from_attributes=True)


def _load(s: Session, share_id: str) -> Share:
    """A share by id, for the job's own bookkeeping (the caller was checked when it started)."""
    row = s.get(Share, share_id)
    if row is None:
        raise not_found("share", "share", share_id)
    return row


def _visible(s: Session, actor: str | None, share_id: str) -> tuple[Share, Context]:
    """The share and the caller's context, if the caller may see shares of its project;
    otherwise the same "not found" as for an id that does not exist."""
    row, ctx = subjects.visible(s, SHARE, actor, share_id)
    assert isinstance(row, Share)
    return row, ctx


def _built_package(s: Session, actor: str | None, package_id: str) -> tuple[Package, Context]:
    row, ctx = pkgs.visible(s, actor, package_id)
    if row.state != "built":
        raise InvalidTransition(
            f"{row.id} is {row.state}; only a built package can be shared",
            [Detail("not built", field="package", value=row.id, accepted="built")],
        )
    return row, ctx


def _dest_root(destination: str, package_name: str) -> str:
    """The package's own folder below a checked destination (see ``parse_destination``)."""
    return destination.rstrip("/") + "/" + package_name


def _source_uris(s: Session, package_id: str) -> list[str]:
    return list(
        s.scalars(
            select(PackageFile.source_uri).where(PackageFile.package_id == package_id).distinct()
        )
    )


def _tag_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _items(settings: Settings, s: Session, pkg: Package) -> list[tx.TransferItem]:
    """Every object of the bag: payload files (from the bag, or their source when fetched)
    and everything else the bag holds (tag files, manifests, RO-Crate metadata, report)."""
    bag = pkgs.bag_dir(settings, pkg.id)
    local = open_store(str(bag))
    items: list[tx.TransferItem] = []
    sources: dict[str, Store] = {}
    s3 = settings.s3_config()
    payload = set()
    for f in s.scalars(select(PackageFile).where(PackageFile.package_id == pkg.id)):
        payload.add(f.relpath)
        if f.size is None or f.sha256 is None:  # set when the package was built
            raise InvalidTransition(f"{pkg.id} has a file without a checksum: {f.relpath}")
        if pkg.mode == "fetch":
            # The URI is percent-encoded (file:///…/a%20b.fq): read the file it names, with
            # one store per bucket (and one for local files).
            source = parse_source(f.source_uri)
            if isinstance(source, S3Source):
                root, src_key = f"s3://{source.bucket}", source.key
            else:
                root, src_key = "file:///", str(source.path).lstrip("/")
            if root not in sources:
                sources[root] = open_store(root, s3)
            src = sources[root]
        else:
            src, src_key = local, f.relpath
        items.append(tx.TransferItem(src, src_key, f.relpath, f.size, f.sha256, f.md5))
    for path in sorted(p for p in bag.rglob("*") if p.is_file()):
        rel = path.relative_to(bag).as_posix()
        if rel in payload or rel.startswith("."):
            continue  # payload files are above; dot-folders are the builder's own
        items.append(tx.TransferItem(local, rel, rel, path.stat().st_size, _tag_digest(path), None))
    return items


def _find_resumable(s: Session, package_id: str, destination: str) -> Share | None:
    return s.scalars(
        select(Share)
        .where(
            Share.package_id == package_id,
            Share.method == "push",
            Share.destination == destination,
            Share.state.in_(["pending", "running", "failed", "succeeded"]),
        )
        .order_by(Share.created_at.desc())
    ).first()


def _claim_push(
    db: Database, *, actor: str | None, package_id: str, destination: str
) -> tuple[ShareView, bool]:
    """The share to work on — a new one, or the earlier one for this package and place."""
    with db.transaction() as s:
        pkg, ctx = _built_package(s, actor, package_id)
        row = _find_resumable(s, pkg.id, destination)
        if row is not None and row.state == "succeeded":
            return view(row), False
        if row is None:
            row = Share(id=new_id(domain.KIND), project_id=pkg.project_id, version=1)
            ledger.record_create(
                s,
                kind=KIND,
                row=row,
                ctx=ctx,
                data={
                    "package_id": pkg.id,
                    "method": "push",
                    "destination": destination,
                    "created_by": ctx.actor,
                },
            )
        if row.state == "failed":
            runner.retry(s, PUSH_JOB, row, ctx)
        runner.claim(s, PUSH_JOB, row, ctx)
        s.refresh(row)
        return view(row), True


class _Registry:
    """Writes verified objects to the share registry in batches, from any thread."""

    def __init__(self, db: Database, share: ShareView, destination: str) -> None:
        self.db = db
        self.share = share
        self.destination = destination
        self.lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []
        with db.read() as s:
            self.known = set(
                s.scalars(select(ShareObject.key).where(ShareObject.share_id == share.id))
            )

    def add(self, result: tx.TransferResult) -> None:
        with self.lock:
            if result.dest_key in self.known:
                return
            self.known.add(result.dest_key)
            self.pending.append(
                {
                    "share_id": self.share.id,
                    "key": result.dest_key,
                    "package_id": self.share.package_id,
                    "destination": self.destination,
                    "size": result.size,
                    "sha256": result.sha256,
                    "etag": result.etag,
                    "skipped": result.skipped,
                    "verified_at": utcnow(),
                }
            )
            if len(self.pending) >= REGISTRY_BATCH:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            with self.db.transaction() as s:
                s.execute(insert(ShareObject), self.pending)
            self.pending = []


def push(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    destination: str,
    concurrency: int | None = None,
    progress: PushProgress | None = None,
) -> ShareView:
    """Send a built package to ``destination`` (s3://bucket/prefix, file:///dir or an
    absolute folder) and verify it.

    The destination is refused before anything moves when it is empty, relative or malformed,
    or when the package's folder there would lie in (or hold) STEWARD_HOME, a bag or one of
    the package's source folders.
    """
    dest, project_id = _checked_destination(
        db, settings, actor=actor, package_id=package_id, destination=destination
    )
    with audited(db, actor=actor, action="push", project_id=project_id, subject_kind=domain.KIND):
        share, claimed = _claim_push(db, actor=actor, package_id=package_id, destination=dest.url)
    if not claimed:
        return share
    progress = progress or PushProgress()
    registry = _Registry(db, share, dest.url)
    with runner.work(
        db,
        PUSH_JOB,
        share.id,
        actor=actor,
        on_start=progress.start,
        on_advance=progress.advance,
        on_stopped=lambda _state: registry.flush(),
    ) as job:
        with db.transaction() as s:
            items = _items(settings, s, pkgs.load(s, package_id))
        job.start(sum(i.size for i in items), len(items))

        def done(result: tx.TransferResult) -> None:
            registry.add(result)
            job.advance(result.size if result.skipped else 0, 1)

        summary = tx.transfer(
            items,
            dest,
            concurrency=concurrency or settings.workers or 4,
            on_progress=lambda n: job.advance(n, 0),
            on_done=done,
            should_stop=job.should_stop,
        )
        registry.flush()
        with db.transaction() as s:
            row = _load(s, share.id)
            ctx = pkgs.context(s, actor, row.project_id)
            ledger.record(
                s,
                kind=KIND,
                row=row,
                command="finish",
                ctx=ctx,
                data={
                    "object_count": len(items),
                    "bytes_total": sum(i.size for i in items),
                    "skipped": getattr(summary, "skipped", None),
                },
            )
            s.refresh(row)
            return view(row)


PUSH_SETTING = "STEWARD_API_PUSH_ROOTS"


def _checked_destination(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    destination: str,
    confined: bool = False,
) -> tuple[Store, str]:
    """The destination store, checked before anything is recorded or moves, and the project.
    ``confined`` (a push asked for over the API): it must lie in ``api_push_roots``."""
    where = parse_destination(destination, field="destination")
    with db.read() as s:
        pkg, ctx = _built_package(s, actor, package_id)
        domain.WORKFLOW.decide_create(ctx)
        name, project_id = pkg.name, pkg.project_id
        sources = _source_uris(s, pkg.id)
    dest = open_store(_dest_root(where, name), settings.s3_config())
    if confined:
        places.require_inside(
            settings.api_push_roots, places.of_store(dest), destination,
            setting=PUSH_SETTING, field="destination",
        )  # fmt: skip
    places.refuse_push_target(settings, dest, destination, sources, field="destination")
    dest.check_writable()  # a missing bucket or a refused key stops us before any data moves
    return dest, project_id


def request_push(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    destination: str,
    concurrency: int | None = None,
    confined: bool = False,
) -> tuple[ShareView, str | None]:
    """Queue a push for a worker (``--no-wait``); returns the share and the action id.

    The same checks as :func:`push` run first (and, when ``confined`` — asked for over the
    API —, the destination must lie in ``api_push_roots``). The share is the one :func:`push`
    would continue (a failed one is moved back to pending); asking again while its push is
    queued or running is the same action. No action (None) when the share already succeeded
    or is being sent.
    """
    dest, project_id = _checked_destination(
        db, settings, actor=actor, package_id=package_id, destination=destination,
        confined=confined,
    )  # fmt: skip
    with (
        audited(db, actor=actor, action="push", project_id=project_id, subject_kind=domain.KIND),
        db.transaction() as s,
    ):
        pkg, ctx = _built_package(s, actor, package_id)
        row = _find_resumable(s, pkg.id, dest.url)
        if row is None:
            row = Share(id=new_id(domain.KIND), project_id=pkg.project_id, version=1)
            ledger.record_create(
                s,
                kind=KIND,
                row=row,
                ctx=ctx,
                data={
                    "package_id": pkg.id,
                    "method": "push",
                    "destination": dest.url,
                    "created_by": ctx.actor,
                },
            )
        if row.state == "failed":
            runner.retry(s, PUSH_JOB, row, ctx)
        if row.state == "succeeded" or runner.held(PUSH_JOB, row):
            return view(row), None
        action_id = outbox.request(
            s,
            subject_kind=domain.KIND,
            subject_id=row.id,
            project_id=row.project_id,
            action=PUSH_JOB.action,
            payload={"package_id": pkg.id, "destination": destination, "concurrency": concurrency},
            actor=ctx.actor,
        )
        s.flush()
        s.refresh(row)
        return view(row), action_id


def push_queued(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    share_id: str,
    destination: str,
    concurrency: int | None,
) -> ShareView:
    """A worker's push of a queued share; a share that ended meanwhile (aborted, or sent by
    someone else) is left as it is — the push is never done twice."""
    with db.read() as s:
        row = _load(s, share_id)
        if row.state in ("aborted", "succeeded"):
            return view(row)
        package_id = row.package_id
    return push(
        db,
        settings,
        actor=actor,
        package_id=package_id,
        destination=destination,
        concurrency=concurrency,
    )


def _pushed_to_s3(s: Session, package_id: str, share_id: str | None) -> Share:
    q = select(Share).where(
        Share.package_id == package_id, Share.method == "push", Share.state == "succeeded"
    )
    if share_id:
        q = q.where(Share.id == share_id)
    candidates = [
        r
        for r in s.scalars(q.order_by(Share.completed_at.desc()))
        if r.destination.startswith("s3://")
    ]
    if not candidates:
        raise ValidationFailed(
            f"{package_id} is not in object storage yet; presigned links point at S3 objects",
            [
                Detail(
                    "push it first",
                    field="package",
                    value=package_id,
                    accepted=f"steward share push {package_id} --to s3://bucket/prefix/",
                )
            ],
        )
    return candidates[0]


@dataclass(frozen=True)
class Presigned:
    """A presign share with its links and the script that holds them — secrets, all but the
    share: never log them."""

    share: ShareView
    links: list[script.ScriptEntry]
    script: str


def presign(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    expires: timedelta,
    output: Path | None = None,
    from_share: str | None = None,
    force: bool = False,
) -> ShareView:
    """Write a download script with presigned links to the package's pushed objects.

    The script is 0700 (its links work like passwords). ``output`` is checked before anything
    is recorded: an existing file is kept unless ``force``, a missing folder is not created,
    and no script goes into a bag, a source folder or STEWARD_HOME outside ``shares/``.
    """
    return presign_links(
        db, settings, actor=actor, package_id=package_id, expires=expires, output=output,
        from_share=from_share, force=force,
    ).share  # fmt: skip


def presign_links(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    expires: timedelta,
    output: Path | None = None,
    from_share: str | None = None,
    force: bool = False,
) -> Presigned:
    """:func:`presign`, answering the links and the script's text too (for the API)."""
    if expires <= timedelta(0) or expires > MAX_LINK_LIFETIME:
        raise ValidationFailed(
            "presigned links must live between one second and 7 days",
            [Detail("out of range", field="expires", value=str(expires), accepted="1s … 7d")],
        )
    now = utcnow()
    links_expire = now + expires
    with (
        audited(db, actor=actor, action="presign", subject_kind=domain.KIND),
        db.transaction() as s,
    ):
        pkg, ctx = _built_package(s, actor, package_id)
        domain.WORKFLOW.decide_create(ctx)  # who may share it, before what it needs
        source = _pushed_to_s3(s, pkg.id, from_share)
        if output is not None:
            places.refuse_script_target(settings, output, _source_uris(s, pkg.id), field="output")
            outfiles.check_target(output, overwrite=force, field="output")
        objects = list(
            s.scalars(
                select(ShareObject)
                .where(ShareObject.share_id == source.id)
                .order_by(ShareObject.key)
            )
        )
        row = Share(id=new_id(domain.KIND), project_id=pkg.project_id, version=1)
        ledger.record_create(
            s,
            kind=KIND,
            row=row,
            ctx=ctx,
            data={
                "package_id": pkg.id,
                "method": "presign",
                "destination": source.destination,
                "created_by": ctx.actor,
                "links_expire_at": links_expire.isoformat(),
                "from_share": source.id,
            },
        )
        runner.claim(s, PUSH_JOB, row, ctx)
        share_id, pkg_name, created_by = row.id, pkg.name, ctx.actor
    try:
        store = open_store(source.destination, settings.s3_config())
        entries = [
            script.ScriptEntry(
                path=o.key, url=store.presign_get(o.key, expires), size=o.size, sha256=o.sha256
            )
            for o in objects
        ]
        target = output or (
            settings.home / places.SHARES_FOLDER / share_id / script.script_file_name(pkg_name)
        )
        written = script.write_download_script(
            entries,
            package_name=pkg_name,
            package_id=package_id,
            share_id=share_id,
            created_at=now,
            expires_at=links_expire,
            created_by=created_by,
            path=target,
            overwrite=force,
            parents=output is None,  # Steward's own folder for this share, made 0700
            field="output",
        )
    except BaseException as exc:
        runner.fail(db, PUSH_JOB, share_id, actor=actor, reason=runner.reason(exc, "push"))
        raise
    with db.transaction() as s:
        row = _load(s, share_id)
        ctx = pkgs.context(s, actor, row.project_id)
        ledger.record(
            s,
            kind=KIND,
            row=row,
            command="finish",
            ctx=ctx,
            data={
                "object_count": len(entries),
                "bytes_total": sum(e.size for e in entries),
                "script_path": str(Path(written).resolve()),
            },
        )
        s.refresh(row)
        done = view(row)
    return Presigned(done, entries, Path(written).read_text(encoding="utf-8"))


def act(
    db: Database,
    *,
    actor: str | None,
    share_id: str,
    command: str,
    reason: str | None = None,
    text: str | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
) -> ShareView:
    """abort, retry or comment (the generic ``subjects.act``, with typed arguments)."""
    payload = {"text": text} if command == "comment" else {"reason": reason}
    result: ShareView = subjects.act(
        db,
        SHARE,
        actor=actor,
        subject_id=share_id,
        command=command,
        payload={k: v for k, v in payload.items() if v is not None},
        idempotency_key=idempotency_key,
        expected_version=expected_version,
    )
    return result


def get(
    db: Database, *, actor: str | None, share_id: str, now: datetime | None = None
) -> ShareDetail:
    def registered(s: Session, row: Share) -> tuple[int, int]:
        count, size = s.execute(
            select(func.count(), func.coalesce(func.sum(ShareObject.size), 0)).where(
                ShareObject.share_id == row.id
            )
        ).one()
        return int(count), int(size)

    found = subjects.get(db, SHARE, actor=actor, subject_id=share_id, now=now, extra=registered)
    count, size = found.extra
    return ShareDetail(
        share=view(found.row),
        timeline=found.history.timeline,
        time_in_state=found.history.time_in_state,
        current_state_for=found.history.current_state_for,
        available_actions=found.allowed_actions,
        registered_objects=count,
        registered_bytes=size,
    )


def objects(db: Database, *, actor: str | None, share_id: str) -> list[ShareObjectView]:
    with (
        audited(db, actor=actor, action="objects", subject_kind=domain.KIND, subject_id=share_id),
        db.read() as s,
    ):
        _visible(s, actor, share_id)
        return [
            ShareObjectView.model_validate(o, from_attributes=True)
            for o in s.scalars(
                select(ShareObject)
                .where(ShareObject.share_id == share_id)
                .order_by(ShareObject.key)
            )
        ]


def object_page(
    db: Database, *, actor: str | None, share_id: str, after: str | None, limit: int
) -> tuple[list[ShareObjectView], int, int]:
    """Up to ``limit`` registry entries in key order after the key ``after``, with how many
    there are in all and their bytes."""
    with (
        audited(db, actor=actor, action="objects", subject_kind=domain.KIND, subject_id=share_id),
        db.read() as s,
    ):
        _visible(s, actor, share_id)
        count, size = s.execute(
            select(func.count(), func.coalesce(func.sum(ShareObject.size), 0)).where(
                ShareObject.share_id == share_id
            )
        ).one()
        q = select(ShareObject).where(ShareObject.share_id == share_id)
        if after is not None:
            q = q.where(ShareObject.key > after)
        items = [
            ShareObjectView.model_validate(o, from_attributes=True)
            for o in s.scalars(q.order_by(ShareObject.key).limit(limit))
        ]
        return items, int(count), int(size)


def visible_query(s: Session, actor: str | None, flt: Filter) -> Select[Share]:
    return subjects.visible_query(s, SHARE, actor, flt)


def list_shares(
    db: Database, *, actor: str | None, flt: Filter, sort: str = "created"
) -> list[ShareView]:
    return subjects.list_(db, SHARE, actor=actor, flt=flt, sort=sort)
