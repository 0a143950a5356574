"""GA4GH DRS 1.5 objects for built packages: each payload file a blob, the package a bundle.

Ids are made of unreserved characters only, so they need no percent-encoding and cannot be
mis-routed: a package's id (``pkg_…``) is its bundle; ``pkg_….N`` is its N-th payload file in
path order (a built package's files never change, so the number always names the same bytes).

Who may read an object is who may see its package (the package kind's policy); anyone else
hears "not found", as everywhere. Only built packages are served. Where the bytes are:

- ``file``: the payload in the bag on this server's disk (or, for a holey ``fetch`` bag, the
  local source it points at);
- ``s3``: the object where a verified push put it (or the S3 source of a ``fetch`` bag), with
  an ``https`` access id that mints a presigned link on each request, valid for minutes.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from steward.adapters.storage import open_store
from steward.config import Settings
from steward.db.models import Package, PackageFile, Share, ShareObject
from steward.db.session import Database
from steward.errors import Concealed, Detail, NotFound
from steward.services import packages
from steward.services.access import audited

SPEC_VERSION = "1.5.0"
LINK_LIFETIME = timedelta(minutes=15)
MAX_BULK = 1000
_PORTABLE = re.compile(r"[^A-Za-z0-9._-]")
_BLOB = re.compile(r"^(pkg_[0-9A-HJKMNP-TV-Z]{26})\.([1-9][0-9]{0,8})$")
HTTPS = "https"


class Checksum(BaseModel):
    checksum: str
    type: str


class AccessURL(BaseModel):
    url: str
    headers: list[str] | None = None


class AccessMethod(BaseModel):
    type: Literal["s3", "gs", "ftp", "gsiftp", "globus", "htsget", "https", "file"]
    access_url: AccessURL | None = None
    access_id: str | None = None
    region: str | None = None
    available: bool | None = None


class ContentsObject(BaseModel):
    name: str
    id: str
    drs_uri: list[str]


class DrsObject(BaseModel):
    id: str
    name: str | None = None
    self_uri: str
    size: int
    created_time: datetime
    updated_time: datetime | None = None
    version: str | None = None
    mime_type: str | None = None
    checksums: list[Checksum]
    access_methods: list[AccessMethod] | None = None
    contents: list[ContentsObject] | None = None
    description: str | None = None
    aliases: list[str] | None = None


def _unknown(object_id: str) -> NotFound:
    return NotFound(
        f"no DRS object {object_id!r}",
        [
            Detail(
                "unknown object",
                field="object_id",
                value=object_id[:120],
                accepted="a built package's id, or pkg_….N for its N-th file",
            )
        ],
    )


def _package(s: Session, actor: str | None, object_id: str, package_id: str) -> Package:
    try:
        row, _ = packages.visible(s, actor, package_id)
    except Concealed as exc:  # the same words as for an unknown id; the audit keeps why
        plain = _unknown(object_id)
        raise Concealed(plain.message, plain.details, reason=exc.reason) from None
    except NotFound:
        raise _unknown(object_id) from None
    if row.state != "built":
        raise _unknown(object_id)
    return row


def _in_path_order(s: Session) -> Any:
    """Byte order of paths on both databases (PostgreSQL's default collation depends on the
    server's locale), so ``pkg_….N`` names the same file wherever the package is read."""
    column = PackageFile.relpath
    return column.collate("C") if s.get_bind().dialect.name == "postgresql" else column


def _file(s: Session, package_id: str, n: int, object_id: str) -> PackageFile:
    found = s.scalars(
        select(PackageFile)
        .where(PackageFile.package_id == package_id)
        .order_by(_in_path_order(s))
        .offset(n - 1)
        .limit(1)
    ).first()
    if found is None:
        raise _unknown(object_id)
    return found


def _pushed(s: Session, package_id: str) -> Share | None:
    """The newest verified push to S3: its objects are where recipients can fetch them."""
    return s.scalars(
        select(Share)
        .where(
            Share.package_id == package_id,
            Share.method == "push",
            Share.state == "succeeded",
            Share.destination.like("s3://%"),
        )
        .order_by(Share.completed_at.desc(), Share.id.desc())
        .limit(1)
    ).first()


def _s3_url(share: Share, key: str) -> str:
    return share.destination.rstrip("/") + "/" + key


def _methods(
    s: Session, settings: Settings, pkg: Package, f: PackageFile, pushed: Share | None
) -> list[AccessMethod]:
    methods: list[AccessMethod] = []
    if pkg.mode == "fetch":
        source = f.source_uri
        if source.startswith("s3://"):
            methods.append(
                AccessMethod(
                    type="s3",
                    access_url=AccessURL(url=source),
                    access_id=HTTPS,
                    region=settings.s3_region,
                )
            )
        else:
            local = source if "://" in source else Path(source).resolve().as_uri()
            methods.append(AccessMethod(type="file", access_url=AccessURL(url=local)))
    else:
        payload = packages.bag_dir(settings, pkg.id) / f.relpath
        methods.append(AccessMethod(type="file", access_url=AccessURL(url=payload.as_uri())))
    if pushed is not None:
        there = s.scalar(
            select(func.count())
            .select_from(ShareObject)
            .where(ShareObject.share_id == pushed.id, ShareObject.key == f.relpath)
        )
        if there:
            methods.append(
                AccessMethod(
                    type="s3",
                    access_url=AccessURL(url=_s3_url(pushed, f.relpath)),
                    access_id=f"{HTTPS}-{pushed.id}",
                    region=settings.s3_region,
                )
            )
    return methods


def _name(text: str) -> str:
    return _PORTABLE.sub("_", text) or "_"


def _uri(host: str, object_id: str) -> str:
    return f"drs://{host}/{object_id}"


def get_object(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    object_id: str,
    host: str,
    expand: bool = False,
) -> DrsObject:
    """The blob or bundle ``object_id`` names, as the caller may see it."""
    with (
        audited(
            db, actor=actor, action="drs-get", subject_kind="drs_object", subject_id=object_id[:40]
        ),
        db.read() as s,
    ):
        blob = _BLOB.match(object_id)
        package_id = blob.group(1) if blob else object_id
        pkg = _package(s, actor, object_id, package_id)
        made = pkg.completed_at or pkg.created_at
        if blob is not None:
            f = _file(s, pkg.id, int(blob.group(2)), object_id)
            name = f.relpath.rsplit("/", 1)[-1]
            sums = [Checksum(checksum=f.sha256, type="sha-256")] if f.sha256 else []
            sums += [Checksum(checksum=f.md5, type="md5")] if f.md5 else []
            return DrsObject(
                id=object_id,
                name=_name(name),
                self_uri=_uri(host, object_id),
                size=f.size or 0,
                created_time=made,
                updated_time=made,
                mime_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                checksums=sums,
                access_methods=_methods(s, settings, pkg, f, _pushed(s, pkg.id)),
                description=f"{f.relpath} of package {pkg.name}",
                aliases=[f.relpath],
            )
        rows = list(
            s.execute(
                select(PackageFile.relpath, PackageFile.sha256, PackageFile.size)
                .where(PackageFile.package_id == pkg.id)
                .order_by(_in_path_order(s))
            )
        )
        members = [
            ContentsObject(name=relpath, id=f"{pkg.id}.{i}", drs_uri=[_uri(host, f"{pkg.id}.{i}")])
            for i, (relpath, _, _) in enumerate(rows, start=1)
        ]
        # A bundle's checksum: of its members' checksums, sorted and joined (DRS 1.5).
        joined = "".join(sorted(sha or "" for _, sha, _ in rows))
        return DrsObject(
            id=pkg.id,
            name=_name(pkg.name),
            self_uri=_uri(host, pkg.id),
            size=sum(size or 0 for _, _, size in rows),
            created_time=made,
            updated_time=made,
            checksums=[
                Checksum(checksum=hashlib.sha256(joined.encode()).hexdigest(), type="sha-256")
            ],
            contents=members,
            description=pkg.description or f"data package {pkg.name}",
            aliases=[pkg.name],
        )


def access_url(
    db: Database, settings: Settings, *, actor: str | None, object_id: str, access_id: str
) -> AccessURL:
    """A fresh presigned link to a blob's bytes (minted per request, valid for minutes)."""
    with (
        audited(
            db,
            actor=actor,
            action="drs-access",
            subject_kind="drs_object",
            subject_id=object_id[:40],
        ),
        db.read() as s,
    ):
        blob = _BLOB.match(object_id)
        if blob is None:
            raise _unknown(object_id)
        pkg = _package(s, actor, object_id, blob.group(1))
        f = _file(s, pkg.id, int(blob.group(2)), object_id)
        methods = _methods(s, settings, pkg, f, _pushed(s, pkg.id))
    method = next((m for m in methods if m.access_id == access_id), None)
    if method is None or method.access_url is None:
        offered = ", ".join(m.access_id for m in methods if m.access_id) or "none"
        raise NotFound(
            f"object {object_id} has no access id {access_id!r}",
            [
                Detail(
                    "unknown access id", field="access_id", value=access_id[:80], accepted=offered
                )
            ],
        )
    # s3://bucket/key, split by hand: a key may hold '?' or '#', which a URL parser would cut.
    bucket, _, key = method.access_url.url.removeprefix("s3://").partition("/")
    store = open_store(f"s3://{bucket}", settings.s3_config())
    return AccessURL(url=store.presign_get(key, LINK_LIFETIME))
