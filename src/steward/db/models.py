"""Tables. Tracked subjects carry ``state`` and ``version`` but only the ledger writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from steward.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - read by SQLAlchemy at class creation
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Tracked:
    """The columns every tracked kind has; only the ledger writes ``state`` and ``version``.

    SQLAlchemy checks ``version`` in every UPDATE (``version_id_col``): the optimistic-
    concurrency guard that makes the loser of two racing commands get ``Conflict``.
    """

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    state: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    state_since: Mapped[datetime]

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    # argon2id (PHC string); None: the user cannot sign in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # A disabled user's tokens and sessions stop working and nobody may act as them.
    disabled_at: Mapped[datetime | None]
    disabled_by: Mapped[str | None] = mapped_column(String(64))

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]


class Membership(Base):
    __tablename__ = "memberships"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class AccessRequirement(Base):
    __tablename__ = "access_requirements"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Folder(Base):
    """A dataset or folder of a project; its requirement governs it and folders below it."""

    __tablename__ = "folders"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    requirement_id: Mapped[str | None] = mapped_column(ForeignKey("access_requirements.id"))


class Event(Base):
    """The ledger: append-only; the truth every read model and report is derived from."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("subject_kind", "subject_id", "seq", name="uq_events_subject_seq"),
        # Reports read one project's events request by request (ordered, no sort).
        Index("ix_events_project_subject", "project_id", "subject_kind", "subject_id", "seq"),
        # Time in state: one project's finished stays in each state, in order of length.
        Index("ix_events_stays", "subject_kind", "project_id", "from_state", "stay_seconds"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    stay_seconds: Mapped[float | None]
    """On an event that moves the subject out of a state: how long it had been in that state
    (this event's time minus the time it entered ``from_state``), written with the event so
    that time-in-state reports need not pair every transition with the one before it. Empty
    on the creation and on events that change no state (comments, edits)."""


class ChangeLog(Base):
    """A subject's change log, kept as the CSV lines its export writes (times in UTC).

    One row per subject, updated by the ledger in the same transaction as each event that
    changes the subject's state (``services/change_logs.py`` says why and how).
    """

    __tablename__ = "change_logs"
    __table_args__ = (
        # An export reads one project's logs subject by subject, in order, without a sort.
        Index("ix_change_logs_project", "project_id", "subject_kind", "subject_id"),
    )
    subject_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    lines: Mapped[str] = mapped_column(Text)
    """Every state change as a CSV line; the latest without its last two fields (how long
    the subject has been in the state it entered, and ``True``), added when exported."""
    moves: Mapped[int] = mapped_column(Integer)
    """How many state changes (lines) there are."""
    state: Mapped[str] = mapped_column(String(32))
    """The state the latest change entered."""
    since: Mapped[datetime]
    """When the latest change happened."""


class AccessRequest(Tracked, Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_access_requests_external"),
        Index("ix_access_requests_project_state", "project_id", "state"),
        # A requester's own view, and lists filtered by requester (the API's commonest).
        Index("ix_access_requests_project_requester", "project_id", "requester"),
    )
    external_id: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    requester: Mapped[str] = mapped_column(ForeignKey("users.id"))
    institution: Mapped[str] = mapped_column(String(300), default="")
    project_lead: Mapped[str] = mapped_column(String(200), default="")
    intended_use: Mapped[str] = mapped_column(Text, default="")
    datasets: Mapped[list[str]] = mapped_column(default=list)
    duo_codes: Mapped[list[str]] = mapped_column(default=list)
    reviewer: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    ticket_key: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Refusals and other security-relevant facts that are not state changes."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # The audit log is read newest first, by project (a steward's view) or by actor.
        Index("ix_audit_log_project", "project_id", "id"),
        Index("ix_audit_log_actor", "actor", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    subject_kind: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")


class Package(Tracked, Base):
    """A data package (BagIt bag) built from a manifest; its files are in ``package_files``."""

    __tablename__ = "packages"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_packages_project_name"),
        Index("ix_packages_project_state", "project_id", "state"),
    )
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str] = mapped_column(String(16))
    layout: Mapped[str] = mapped_column(String(500))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    manifest_digest: Mapped[str] = mapped_column(String(64))
    # Every library the manifests list (for the report's Metadata section, including those
    # without files) and the manifest's warnings, as the package was accepted.
    libraries: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[str]] = mapped_column(default=list)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    builder: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]
    keep_until: Mapped[datetime | None]
    files_removed_at: Mapped[datetime | None]


class PackageFile(Base):
    """One payload file: where it came from, where it sits in the bag, and its checksums."""

    __tablename__ = "package_files"
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    relpath: Mapped[str] = mapped_column(String(1024), primary_key=True)
    source_uri: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(32))
    storage_class: Mapped[str | None] = mapped_column(String(32))
    line: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    sample_id: Mapped[str] = mapped_column(String(200))
    library_id: Mapped[str] = mapped_column(String(200))
    subject_id: Mapped[str] = mapped_column(String(200))
    project_code: Mapped[str] = mapped_column(String(200))
    data_type: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(200))
    lane: Mapped[str | None] = mapped_column(String(32))
    workflow_name: Mapped[str | None] = mapped_column(String(200))


class Share(Tracked, Base):
    """A package pushed to a destination or handed out as presigned links."""

    __tablename__ = "shares"
    __table_args__ = (Index("ix_shares_project_state", "project_id", "state"),)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id"))
    method: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    object_count: Mapped[int | None] = mapped_column(Integer)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    links_expire_at: Mapped[datetime | None]
    script_path: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]


class ShareObject(Base):
    """The share registry: every object that reached a destination and was verified there."""

    __tablename__ = "share_objects"
    share_id: Mapped[str] = mapped_column(ForeignKey("shares.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    package_id: Mapped[str] = mapped_column(String(40), index=True)
    destination: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(String(80))
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_at: Mapped[datetime]


class Dataset(Tracked, Base):
    """A dataset the crawl found: its stage is its state; its places are ``dataset_locations``,
    its files ``dataset_files``. Metadata columns are projected from events, except
    ``last_seen_at``, which every crawl that sees it updates (an observation, not a change)."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "accession", name="uq_datasets_project_accession"),
        Index("ix_datasets_project_state", "project_id", "state"),
    )
    accession: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text, default="")
    experiment_type: Mapped[str] = mapped_column(Text, default="")
    organism: Mapped[list[str]] = mapped_column(default=list)
    curator: Mapped[str] = mapped_column(Text, default="")
    technologies: Mapped[list[str]] = mapped_column(default=list)
    secondary_accessions: Mapped[list[str]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Every metadata field the extractors (or an endpoint's record) gave."""
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    problem_count: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime | None]
    missing_since: Mapped[datetime | None]
    duplicate_of: Mapped[str | None] = mapped_column(String(200))
    """The accession of the dataset this one is another copy of (secondary accessions)."""


class DatasetLocation(Base):
    """One place a dataset was found: a folder, prefix or record of one crawl source.

    ``present`` turns false when a complete listing of its source no longer has it; a source
    that failed leaves it as it was (unknown, never gone). ``fields`` and ``problems`` are what
    its metadata files gave when last read, so an unchanged place is never read again."""

    __tablename__ = "dataset_locations"
    __table_args__ = (Index("ix_dataset_locations_source", "source", "present"),)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    """The dataset's key within its source (its folder or prefix below the root)."""
    location: Mapped[str] = mapped_column(Text)
    """Where people find it (never with credentials)."""
    stage: Mapped[str] = mapped_column(String(32))
    technologies: Mapped[list[str]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    digest: Mapped[str] = mapped_column(String(80), default="")
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    present: Mapped[bool] = mapped_column(Boolean, default=True)


class DatasetFile(Base):
    """The durable record of one file of a dataset, kept after it is gone: which file was
    there (or missing) on a given day has an answer."""

    __tablename__ = "dataset_files"
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    """Below the source's root, ``/``-separated."""
    size: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(200))
    etag: Mapped[str | None] = mapped_column(String(200))
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(32))
    """``present``, ``missing`` (expected by a manifest, not there) or ``removed`` since the
    listing that no longer had it."""

    __table_args__ = (
        # The few missing files, for re-crawls that do not examine the others.
        Index(
            "ix_dataset_files_missing",
            "source",
            "dataset_id",
            sqlite_where=text("outcome = 'missing'"),
            postgresql_where=text("outcome = 'missing'"),
        ),
    )


class CrawlListing(Base):
    """A source's listing state between crawls (directory times, ETags, endpoint pages),
    written only after the events of the crawl that made it are committed."""

    __tablename__ = "crawl_listings"
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class Crawl(Base):
    """One crawl: who started it, when, how it ended and its summary."""

    __tablename__ = "crawls"
    __table_args__ = (Index("ix_crawls_started_at", "started_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CrawlLock(Base):
    """Which crawl holds a source now, so two crawls of overlapping sources never run at once.

    A lease, not a lock held in memory: the holder (host:pid:thread) renews it while the crawl
    runs, and a crawl killed with -9 stops blocking the next one as soon as its process is gone
    (on this host) or its lease ran out. ``holder`` None: free."""

    __tablename__ = "crawl_locks"
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    crawl_id: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime | None]
    started_by: Mapped[str | None] = mapped_column(String(64))


class CrawlSchedule(Base):
    """A periodic crawl the worker's scheduler queues (``steward crawl schedule add``).

    The sources are kept as a crawl table without secrets (credentials only as the names of
    environment variables, which the worker resolves), so the worker needs no file. When it is
    next due is the ``schedules`` row named ``crawl:NAME`` (the scheduler's turn)."""

    __tablename__ = "crawl_schedules"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    every_seconds: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[str] = mapped_column(Text)
    """Where the sources came from (a file's path, steward.toml), for people."""
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_crawl_id: Mapped[str | None] = mapped_column(String(40))
    full: Mapped[bool] = mapped_column(default=False)
    """Its crawls examine every file (``steward crawl --full``), not only changed folders'."""


class Site(Base):
    """A biobank or node that runs analyses; its members (analysts) work on its tasks."""

    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class SiteMember(Base):
    """A user's membership of a site; ``analyst`` is the site-scoped role."""

    __tablename__ = "site_members"
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(32), default="analyst")
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A personal API token: only a SHA-256 of its secret is kept (shown once, at creation).

    A fast hash, not argon2: the secret is 256 random bits, so there is nothing to slow a
    guesser down for, and the API checks a token on every call."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class LoginFailure(Base):
    """A sign-in with a password that failed (or is being checked: the row is written before
    the check and removed when it succeeds), counted per account name and per client
    address to rate-limit guessing. Rows older than the window are pruned."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_account", "account", "at"),
        Index("ix_login_failures_address", "address", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    account: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))


class BrowserSession(Base):
    """A signed-in browser: the cookie holds ``id.secret``; only the secret's SHA-256 is kept.
    The CSRF token is derived from the secret, so it is stored nowhere either."""

    __tablename__ = "browser_sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ApiIdempotency(Base):
    """What an API call sent with an ``Idempotency-Key``: a key sent again with a different
    body is refused (422) instead of answering the first call's result for another request."""

    __tablename__ = "api_idempotency"
    key: Mapped[str] = mapped_column(String(230), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


from steward.db import queue_tables  # noqa: E402, F401  (registers the job tables)
