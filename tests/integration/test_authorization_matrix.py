"""Every endpoint of the API, driven by every kind of caller, answers exactly as the policy
says: this table is the policy, written out.

Callers: an administrator (admin-scoped token), the project's steward, reviewer, requester and
viewer, an analyst of site A and one of site B (members of no project), nobody (no token), a
revoked token and an expired one. The world: project ``p1`` with a request filed by the
requester, a built package and a push of it, sites A and B. Each command is sent to a fresh
subject in a state where the workflow allows it, so the answer shows who may issue it, not
what state it was in. A new endpoint without a row here fails the test until someone decides
who may call it.

Codes: 2xx — allowed; 401 — not signed in; 403 — may see but not do; 404 — may not see (the
same as for something that does not exist); 409 — seen and allowed, but not in this state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.config import Settings
from steward.db.models import ApiToken
from steward.domain.requests import RequestFields
from steward.jobs import service as jobs
from steward.services import (
    accounts,
    crawls,
    package_build,
    packages,
    requests,
    sessions,
    shares,
    sites,
    tokens,
)
from steward.services.packages import PackageSpec
from steward.timeutil import utcnow
from tests.api_server import serving
from tests.conftest import Consortium
from tests.packaging_data import make_dataset

CALLERS = (
    "admin", "steward", "reviewer", "requester", "viewer",
    "analyst_a", "analyst_b", "anonymous", "revoked", "expired",
)  # fmt: skip
SIGNED = CALLERS[:7]
MEMBERS = CALLERS[:5]
NOBODY = ("anonymous", "revoked", "expired")


def row(default: int, **codes: int) -> dict[str, int]:
    """Every caller's answer: ``default`` for the signed-in, 401 for nobody, unless named."""
    table = dict.fromkeys(SIGNED, default) | dict.fromkeys(NOBODY, 401)
    return table | codes


@dataclass
class World:
    api: str
    c: Consortium
    settings: Settings
    secrets: dict[str, str | None]
    request_id: str
    package_id: str
    share_id: str
    tmp: Path
    spec: PackageSpec
    serial: int = 0
    dataset_id: str = ""
    crawl_id: str = ""

    def fresh_package(self, state: str) -> str:
        """A new package of the project's, ``pending`` or ``built``."""
        c = self.c
        view, _ = packages.create(c.db, self.settings, actor=c.steward, project=c.project,
                                  spec=replace(self.spec, name=self.unique("p")))  # fmt: skip
        if state == "built":
            package_build.build(c.db, self.settings, actor=c.steward, package_id=view.id)
        return view.id

    def fresh_request(self, state: str) -> str:
        """A new request of the requester's, brought to ``state`` by the people who may."""
        c = self.c
        fields = RequestFields(title="Matrix", institution="Uni", project_lead="Lee",
                               intended_use="study", datasets=("Controlled genomes",))  # fmt: skip
        rid = requests.create(c.db, actor=c.requester, project=c.project, fields=fields).id
        if state == "draft":
            return rid
        requests.act(c.db, actor=c.requester, request_id=rid, command="submit")
        if state == "submitted":
            return rid
        if state == "returned":
            requests.act(c.db, actor=c.steward, request_id=rid, command="return", reason="more")
            return rid
        requests.act(c.db, actor=c.steward, request_id=rid, command="assign-reviewer",
                     reviewer=c.reviewer)  # fmt: skip
        requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve", reason="ok")
        assert state == "approved"
        return rid

    def fresh_action(self, *, cancelled: bool = False) -> str:
        """A queued build of a new package (cancelled, to be retried)."""
        c = self.c
        pid = self.fresh_package("pending")
        _, action_id = package_build.request_build(c.db, actor=c.steward, package_id=pid)
        if cancelled:
            jobs.cancel(c.db, actor=c.steward, action_id=action_id)
        return action_id

    def fresh_user(self) -> str:
        from steward.services import access

        uid = self.unique("user")
        access.add_user(self.c.db, actor=self.c.admin, user_id=uid)
        return uid

    def fresh_token(self) -> str:
        c = self.c
        return tokens.create(c.db, actor=c.requester, scope="read",
                             expires_in=timedelta(hours=1)).token.id  # fmt: skip

    def fresh_session(self) -> str:
        made = sessions.start(self.c.db, user_id=self.c.requester, lifetime=timedelta(hours=1))
        return made.session.id

    def fresh_schedule(self) -> str:
        """A new crawl schedule of the server's sources, added by the project's steward."""
        from steward.services import crawl, crawl_schedules

        name = self.unique("sched")
        config = crawl.configured(self.served)
        crawl_schedules.add(self.c.db, actor=self.c.steward, name=name,
                            every=timedelta(hours=8), config=config)  # fmt: skip
        return name

    @property
    def served(self) -> Settings:
        """The server's settings: its [crawl] sources feed p1."""
        return self.settings.model_copy(update={"crawl": served_crawl(self.tmp)})

    def unique(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def fresh_dataset(self, state: str) -> str:
        """A new dataset of the project's, found by a crawl in ``loading`` (``missing``: then
        gone from the folder and crawled again)."""
        from steward.crawl.config import parse_crawl_config
        from steward.services import crawl, datasets
        from tests.crawl_trees import ACCESSION, write_tree

        self.serial += 1
        accession, root = f"E-MTAB-{self.serial}", self.tmp / "matrix-data"
        write_tree(root, {f"{accession}/data.txt": "x"})
        entry = {"project": "p1", "url": str(root), "stage": "loading", "pattern": ACCESSION}
        config = parse_crawl_config({"sources": [entry]})
        db = self.c.db
        crawl.run_crawl(db, self.settings, actor=self.c.steward, config=config)
        if state == "missing":
            (root / accession / "data.txt").unlink()
            (root / accession).rmdir()
            crawl.run_crawl(db, self.settings, actor=self.c.steward, config=config)
        with db.read() as s:
            return datasets.resolve(s, self.c.steward, accession)


@pytest.fixture
def world(settings: Settings, consortium: Consortium, tmp_path: Path) -> Iterator[World]:
    c = consortium
    from steward.services import access

    for uid in ("ana", "anb"):
        access.add_user(c.db, actor=c.admin, user_id=uid)
    for site, analyst in (("site-a", "ana"), ("site-b", "anb")):
        sites.add_site(c.db, actor=c.admin, site_id=site, name=site.upper())
        sites.add_member(c.db, actor=c.admin, site_id=site, user_id=analyst)

    def token(user: str, scope: str = "write") -> str:
        return tokens.create(c.db, actor=user, scope=scope, expires_in=timedelta(days=1)).secret

    revoked = tokens.create(c.db, actor=c.requester, scope="write", expires_in=timedelta(days=1))
    tokens.revoke(c.db, actor=c.requester, token_id=revoked.token.id)
    expired = tokens.create(c.db, actor=c.requester, scope="write", expires_in=timedelta(days=1))
    with c.db.transaction() as s:  # as if a day had passed
        row_ = s.get(ApiToken, expired.token.id)
        assert row_ is not None
        row_.expires_at = utcnow() - timedelta(hours=1)
    secrets: dict[str, str | None] = {
        "admin": token(c.admin, "admin"),
        "steward": token(c.steward),
        "reviewer": token(c.reviewer),
        "requester": token(c.requester),
        "viewer": token(c.viewer),
        "analyst_a": token("ana"),
        "analyst_b": token("anb"),
        "anonymous": None,
        "revoked": revoked.secret,
        "expired": expired.secret,
    }
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=SIGN_IN["password"])
    data = make_dataset(tmp_path / "ds", samples=1, fastq_size=100)
    spec = PackageSpec(name="m", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
    package_build.build(c.db, settings, actor=c.steward, package_id=pkg.id)
    share = shares.push(c.db, settings, actor=c.steward, package_id=pkg.id,
                        destination=str(tmp_path / "out"))  # fmt: skip
    (tmp_path / "api-out").mkdir()
    roots = {"api_source_roots": [str(data.root)], "api_push_roots": [str(tmp_path / "api-out")],
             "crawl": served_crawl(tmp_path)}  # fmt: skip
    with serving(settings.model_copy(update=roots)) as api:
        w = World(api, c, settings, secrets, "", pkg.id, share.id, tmp_path, spec)
        w.request_id = w.fresh_request("submitted")
        w.dataset_id = w.fresh_dataset("loading")
        w.crawl_id = crawls.list_crawls(c.db, actor=c.admin, limit=1)[0].id
        yield w


def served_crawl(tmp: Path) -> dict[str, Any]:
    """The server's [crawl]: one folder feeding p1."""
    from tests.crawl_trees import ACCESSION

    (tmp / "served-crawl").mkdir(exist_ok=True)
    source = {"name": "served", "project": "p1", "url": str(tmp / "served-crawl"),
              "stage": "loading", "pattern": ACCESSION}  # fmt: skip
    return {"sources": [source]}


Call = Callable[[World], tuple[str, str, Any]]
"""What to send: method, path and JSON body, given the world (fresh subjects made here)."""


def _get(path: str) -> Call:
    return lambda w: (
        "GET",
        path.format(r=w.request_id, p=w.package_id, s=w.share_id, d=w.dataset_id),
        None,
    )


def _command(kind: str, command: str, state: str, body: dict[str, Any]) -> Call:
    def call(w: World) -> tuple[str, str, Any]:
        subject = {"requests": lambda: w.fresh_request(state),
                   "packages": lambda: w.fresh_package(state) if state else w.package_id,
                   "shares": lambda: w.share_id,
                   "datasets": lambda: w.fresh_dataset(state) if state else w.dataset_id,
                   }[kind]()  # fmt: skip
        return "POST", f"/api/v1/{kind}/{subject}:{command}", body

    return call


def _post(path: str, body: Callable[[World], Any], method: str = "POST") -> Call:
    return lambda w: (method, path.format(r=w.request_id, p=w.package_id, s=w.share_id), body(w))


@dataclass(frozen=True)
class Upload:
    """A multipart/form-data body, for the one route that takes files."""

    data: dict[str, str]
    files: dict[str, tuple[str, bytes]]


def _upload(w: World) -> Upload:
    """A new package's form: its manifests, read from the world's data folder."""
    assert w.spec.workflow_manifest is not None
    return Upload(
        {"name": w.unique("up"), "project": "p1", "base_dir": str(w.spec.manifest.parent)},
        {"manifest": ("m.csv", w.spec.manifest.read_bytes()),
         "workflow_manifest": ("w.csv", w.spec.workflow_manifest.read_bytes())},
    )  # fmt: skip


def outcomes(w: World, call: Call) -> dict[str, int]:
    answers = {}
    for caller in CALLERS:
        method, path, body = call(w)
        secret = w.secrets[caller]
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        if isinstance(body, Upload):
            r = httpx.request(method, w.api + path, data=body.data, files=body.files,
                              headers=headers, timeout=60)  # fmt: skip
        else:
            r = httpx.request(method, w.api + path, json=body, headers=headers, timeout=60)
        answers[caller] = r.status_code
    return answers


SIGN_IN = {"user": "ada", "password": "correct horse battery"}
"""Signing in needs no credentials but the password: the caller's token changes nothing."""


def _req_body(w: World) -> dict[str, Any]:
    return {"project": "p1", "title": "New", "datasets": ["Controlled genomes"]}


CALLS: dict[str, Call] = {
    # access requests (generated from the registry, and filing one)
    "GET /api/v1/requests": _get("/api/v1/requests"),
    "POST /api/v1/requests": _post("/api/v1/requests", _req_body),
    "GET /api/v1/requests/{subject_id}": _get("/api/v1/requests/{r}"),
    "GET /api/v1/requests/{subject_id}/events": _get("/api/v1/requests/{r}/events"),
    "POST /api/v1/requests/{subject_id}:submit": _command("requests", "submit", "draft", {}),
    "POST /api/v1/requests/{subject_id}:edit": _command(
        "requests", "edit", "draft", {"title": "T2"}),
    "POST /api/v1/requests/{subject_id}:assign-reviewer": _command(
        "requests", "assign-reviewer", "submitted", {"reviewer": "rita"}),
    "POST /api/v1/requests/{subject_id}:return": _command(
        "requests", "return", "submitted", {"reason": "more"}),
    "POST /api/v1/requests/{subject_id}:resubmit": _command("requests", "resubmit", "returned", {}),
    "POST /api/v1/requests/{subject_id}:approve": _command(
        "requests", "approve", "submitted", {"reason": "ok"}),
    "POST /api/v1/requests/{subject_id}:reject": _command(
        "requests", "reject", "submitted", {"reason": "no"}),
    "POST /api/v1/requests/{subject_id}:cancel": _command(
        "requests", "cancel", "submitted", {"reason": "gone"}),
    "POST /api/v1/requests/{subject_id}:revoke": _command(
        "requests", "revoke", "approved", {"reason": "breach"}),
    "POST /api/v1/requests/{subject_id}:expire": _command(
        "requests", "expire", "approved", {"reason": "ended"}),
    "POST /api/v1/requests/{subject_id}:comment": _command(
        "requests", "comment", "submitted", {"text": "hi"}),
    # packages: the built one (comment works in every state; the rest answer for `built`)
    "GET /api/v1/packages": _get("/api/v1/packages"),
    "GET /api/v1/packages/{subject_id}": _get("/api/v1/packages/{p}"),
    "GET /api/v1/packages/{subject_id}/events": _get("/api/v1/packages/{p}/events"),
    "POST /api/v1/packages/{subject_id}:comment": _command(
        "packages", "comment", "", {"text": "x"}),
    "POST /api/v1/packages/{subject_id}:retry": _command("packages", "retry", "pending", {}),
    "POST /api/v1/packages/{subject_id}:abort": _command("packages", "abort", "pending", {}),
    "POST /api/v1/packages/{subject_id}:expire": _command("packages", "expire", "built", {}),
    "POST /api/v1/packages/{subject_id}:delete": _command("packages", "delete", "pending", {}),
    # shares: the push (succeeded)
    "GET /api/v1/shares": _get("/api/v1/shares"),
    "GET /api/v1/shares/{subject_id}": _get("/api/v1/shares/{s}"),
    "GET /api/v1/shares/{subject_id}/events": _get("/api/v1/shares/{s}/events"),
    "POST /api/v1/shares/{subject_id}:comment": _command("shares", "comment", "", {"text": "x"}),
    "POST /api/v1/shares/{subject_id}:retry": _command("shares", "retry", "", {}),
    "POST /api/v1/shares/{subject_id}:abort": _command("shares", "abort", "", {}),
    # datasets: one a crawl found in loading; withdraw is for missing ones
    "GET /api/v1/datasets": _get("/api/v1/datasets"),
    "GET /api/v1/datasets/{subject_id}": _get("/api/v1/datasets/{d}"),
    "GET /api/v1/datasets/{subject_id}/events": _get("/api/v1/datasets/{d}/events"),
    "GET /api/v1/datasets/views/{view}": _get("/api/v1/datasets/views/discover"),
    "GET /api/v1/datasets/duplicates": _get("/api/v1/datasets/duplicates"),
    "GET /api/v1/datasets/overview": _get("/api/v1/datasets/overview"),
    "GET /api/v1/datasets/{dataset_id}/files": _get("/api/v1/datasets/{d}/files"),
    "POST /api/v1/datasets/{dataset_id}/verify": lambda w: (
        "POST", f"/api/v1/datasets/{w.dataset_id}/verify", None),
    "POST /api/v1/datasets/{subject_id}:comment": _command(
        "datasets", "comment", "", {"text": "x"}),
    "POST /api/v1/datasets/{subject_id}:withdraw": _command(
        "datasets", "withdraw", "missing", {"reason": "gone"}),
    # packages and shares beyond the generated routes: uploads, builds, files, pushes, links
    "POST /api/v1/packages": _post("/api/v1/packages", _upload),
    "POST /api/v1/packages/{package_id}/build": lambda w: (
        "POST", f"/api/v1/packages/{w.fresh_package('pending')}/build", None),
    "GET /api/v1/packages/{package_id}/contents": _get("/api/v1/packages/{p}/contents"),
    "GET /api/v1/packages/{package_id}/files": _get("/api/v1/packages/{p}/files"),
    "GET /api/v1/packages/{package_id}/validation": _get("/api/v1/packages/{p}/validation"),
    "GET /api/v1/packages/{package_id}/report": _get("/api/v1/packages/{p}/report"),
    "POST /api/v1/shares": _post(
        "/api/v1/shares", lambda w: {"package": w.package_id,
                                     "destination": str(w.tmp / "api-out")}),
    "POST /api/v1/shares/presign": _post("/api/v1/shares/presign",
                                         lambda w: {"package": w.package_id}),
    "GET /api/v1/shares/{share_id}/objects": _get("/api/v1/shares/{s}/objects"),
    # GA4GH DRS and visas
    "GET /ga4gh/drs/v1/service-info": _get("/ga4gh/drs/v1/service-info"),
    "OPTIONS /ga4gh/drs/v1/objects/{object_id}": lambda w: (
        "OPTIONS", f"/ga4gh/drs/v1/objects/{w.package_id}", None),
    "GET /ga4gh/drs/v1/objects/{object_id}": _get("/ga4gh/drs/v1/objects/{p}.1"),
    "POST /ga4gh/drs/v1/objects/{object_id}": _post("/ga4gh/drs/v1/objects/{p}", lambda w: {}),
    "POST /ga4gh/drs/v1/objects": _post(
        "/ga4gh/drs/v1/objects", lambda w: {"bulk_object_ids": [w.package_id]}),
    "GET /ga4gh/drs/v1/objects/{object_id}/access/{access_id}": _get(
        "/ga4gh/drs/v1/objects/{p}.1/access/https"),
    "POST /ga4gh/drs/v1/objects/{object_id}/access/{access_id}": _post(
        "/ga4gh/drs/v1/objects/{p}.1/access/https", lambda w: {}),
    "GET /.well-known/jwks.json": _get("/.well-known/jwks.json"),
    "GET /api/v1/users/{user_id}/visas": _get("/api/v1/users/ada/visas"),
    # people, projects, catalogue
    "GET /api/v1/projects": _get("/api/v1/projects"),
    "POST /api/v1/projects": _post(
        "/api/v1/projects", lambda w: {"id": w.unique("px"), "title": "X"}),
    "GET /api/v1/projects/{project_id}": _get("/api/v1/projects/p1"),
    "PUT /api/v1/projects/{project_id}/members/{user_id}": _post(
        "/api/v1/projects/p1/members/olga", lambda w: {"role": "viewer"}, "PUT"),
    "GET /api/v1/users": _get("/api/v1/users"),
    "POST /api/v1/users": _post("/api/v1/users", lambda w: {"id": w.unique("u")}),
    "GET /api/v1/users/{user_id}": _get("/api/v1/users/ada"),
    "PUT /api/v1/users/{user_id}/password": _post(
        "/api/v1/users/ada/password",
        lambda w: {"password": SIGN_IN["password"], "current_password": SIGN_IN["password"]},
        "PUT"),
    "POST /api/v1/users/{user_id}:disable": lambda w: (
        "POST", f"/api/v1/users/{w.fresh_user()}:disable", None),
    "POST /api/v1/users/{user_id}:enable": lambda w: (
        "POST", f"/api/v1/users/{w.fresh_user()}:enable", None),
    # tokens: make one (no stronger than the caller's), list, revoke the requester's
    "POST /api/v1/tokens": _post("/api/v1/tokens", lambda w: {"scope": "read", "expires": "1h"}),
    "GET /api/v1/tokens": _get("/api/v1/tokens"),
    "GET /api/v1/sessions": _get("/api/v1/sessions"),
    "POST /api/v1/sessions/{session_id}:revoke": lambda w: (
        "POST", f"/api/v1/sessions/{w.fresh_session()}:revoke", None),
    "POST /api/v1/tokens/{token_id}:revoke": lambda w: (
        "POST", f"/api/v1/tokens/{w.fresh_token()}:revoke", None),
    "GET /api/v1/projects/{project_id}/requirements": _get("/api/v1/projects/p1/requirements"),
    "POST /api/v1/projects/{project_id}/requirements": _post(
        "/api/v1/projects/p1/requirements",
        lambda w: {"name": w.unique("req"), "kind": "click-wrap"}),
    "GET /api/v1/projects/{project_id}/tree": _get("/api/v1/projects/p1/tree"),
    "POST /api/v1/projects/{project_id}/tree": _post(
        "/api/v1/projects/p1/tree", lambda w: {"path": w.unique("raw/x")}),
    "GET /api/v1/duo": _get("/api/v1/duo"),
    "GET /api/v1/workflows": _get("/api/v1/workflows"),
    "GET /api/v1/workflows/{name}": _get("/api/v1/workflows/access-request"),
    # reports and jobs
    "GET /api/v1/reports/tracking": _get("/api/v1/reports/tracking"),
    "GET /api/v1/reports/changelog": _get("/api/v1/reports/changelog"),
    "GET /api/v1/reports/time-in-state": _get("/api/v1/reports/time-in-state"),
    "GET /api/v1/reports/sla": _get("/api/v1/reports/sla"),
    "GET /api/v1/jobs": _get("/api/v1/jobs"),
    "GET /api/v1/jobs/{action_id}": _get("/api/v1/jobs/act_00000000000000000000000000"),
    "POST /api/v1/jobs/{action_id}:cancel": lambda w: (
        "POST", f"/api/v1/jobs/{w.fresh_action()}:cancel", None),
    "POST /api/v1/jobs/{action_id}:retry": lambda w: (
        "POST", f"/api/v1/jobs/{w.fresh_action(cancelled=True)}:retry", None),
    # crawls of the server's own sources, and their schedules
    "GET /api/v1/crawls": _get("/api/v1/crawls"),
    "GET /api/v1/crawls/{crawl_id}": lambda w: ("GET", f"/api/v1/crawls/{w.crawl_id}", None),
    "POST /api/v1/crawls": _post("/api/v1/crawls", lambda w: {"full": False}),
    "GET /api/v1/crawl-sources": _get("/api/v1/crawl-sources"),
    "GET /api/v1/crawl-schedules": _get("/api/v1/crawl-schedules"),
    "POST /api/v1/crawl-schedules": _post(
        "/api/v1/crawl-schedules", lambda w: {"name": w.unique("s"), "every": "8h"}),
    "DELETE /api/v1/crawl-schedules/{name}": lambda w: (
        "DELETE", f"/api/v1/crawl-schedules/{w.fresh_schedule()}", None),
    # sites and the audit log
    "GET /api/v1/sites": _get("/api/v1/sites"),
    "POST /api/v1/sites": _post("/api/v1/sites", lambda w: {"id": w.unique("s"), "name": "S"}),
    "GET /api/v1/sites/{site_id}": _get("/api/v1/sites/site-a"),
    "PUT /api/v1/sites/{site_id}/members/{user_id}": _post(
        "/api/v1/sites/site-a/members/ana", lambda w: None, "PUT"),
    "DELETE /api/v1/sites/{site_id}/members/{user_id}": _post(
        "/api/v1/sites/site-b/members/olga", lambda w: None, "DELETE"),
    "GET /api/v1/audit": _get("/api/v1/audit"),
    # signing in, sessions, health
    "GET /api/v1/session": _get("/api/v1/session"),
    "DELETE /api/v1/session": _post("/api/v1/session", lambda w: None, "DELETE"),
    "POST /api/v1/session": _post("/api/v1/session", lambda w: SIGN_IN),
    "POST /api/v1/auth/token": _post("/api/v1/auth/token", lambda w: SIGN_IN),
    "GET /api/v1/auth/oidc/login": _get("/api/v1/auth/oidc/login"),
    "GET /api/v1/auth/oidc/callback": _get("/api/v1/auth/oidc/callback"),
    "GET /healthz": _get("/healthz"),
    "GET /readyz": _get("/readyz"),
}  # fmt: skip


ALL = dict.fromkeys(CALLERS, 200)
ANALYSTS = {"analyst_a": 404, "analyst_b": 404}
SEEN_BY_MEMBERS = row(200, **ANALYSTS)
"""Anything of project p1: its members see it; to anyone else it does not exist."""
STAFF_SEE = row(200, requester=404, **ANALYSTS)
"""Packages and shares: the project's staff, reviewers and viewers; not requesters."""


def _by_roles(
    *allowed: str, default: int = 403, ok: int = 200, hidden: tuple[str, ...] = ()
) -> dict[str, int]:
    """A command or change: ``allowed`` members may, other members are refused (403), the
    ``hidden`` (and non-members) hear that it does not exist."""
    table = row(default, **ANALYSTS) | dict.fromkeys(allowed, ok)
    return table | dict.fromkeys(hidden, 404)


ADMIN_ONLY = row(403, admin=201)

EXPECTED: dict[str, dict[str, int]] = {
    "GET /api/v1/requests": row(200),
    "POST /api/v1/requests": _by_roles("admin", "steward", "requester", ok=201),
    "GET /api/v1/requests/{subject_id}": SEEN_BY_MEMBERS,
    "GET /api/v1/requests/{subject_id}/events": SEEN_BY_MEMBERS,
    "POST /api/v1/requests/{subject_id}:submit": _by_roles("admin", "steward", "requester"),
    "POST /api/v1/requests/{subject_id}:edit": _by_roles("admin", "steward", "requester"),
    "POST /api/v1/requests/{subject_id}:resubmit": _by_roles("admin", "steward", "requester"),
    "POST /api/v1/requests/{subject_id}:cancel": _by_roles("admin", "steward", "requester"),
    "POST /api/v1/requests/{subject_id}:return": _by_roles("admin", "steward", "reviewer"),
    "POST /api/v1/requests/{subject_id}:approve": _by_roles("admin", "steward", "reviewer"),
    "POST /api/v1/requests/{subject_id}:reject": _by_roles("admin", "steward", "reviewer"),
    "POST /api/v1/requests/{subject_id}:revoke": _by_roles("admin", "steward", "reviewer"),
    "POST /api/v1/requests/{subject_id}:expire": _by_roles("admin", "steward"),
    "POST /api/v1/requests/{subject_id}:assign-reviewer": _by_roles("admin", "steward"),
    "POST /api/v1/requests/{subject_id}:comment": SEEN_BY_MEMBERS,
    "GET /api/v1/packages": row(200),
    "GET /api/v1/packages/{subject_id}": STAFF_SEE,
    "GET /api/v1/packages/{subject_id}/events": STAFF_SEE,
    "POST /api/v1/packages/{subject_id}:comment": STAFF_SEE,
    "POST /api/v1/packages/{subject_id}:abort": _by_roles(
        "admin", "steward", hidden=("requester",)
    ),
    "POST /api/v1/packages/{subject_id}:delete": _by_roles(
        "admin", "steward", hidden=("requester",)
    ),
    "POST /api/v1/packages/{subject_id}:expire": _by_roles(
        "admin", "steward", hidden=("requester",)
    ),
    # a pending package cannot be retried: whoever sees it hears so, whatever their role
    "POST /api/v1/packages/{subject_id}:retry": row(409, requester=404, **ANALYSTS),
    "GET /api/v1/shares": row(200),
    "GET /api/v1/shares/{subject_id}": STAFF_SEE,
    "GET /api/v1/shares/{subject_id}/events": STAFF_SEE,
    "POST /api/v1/shares/{subject_id}:comment": STAFF_SEE,
    # the push succeeded: nothing to retry or abort, as whoever sees it hears
    "POST /api/v1/shares/{subject_id}:retry": row(409, requester=404, **ANALYSTS),
    "POST /api/v1/shares/{subject_id}:abort": row(409, requester=404, **ANALYSTS),
    # datasets: the project's staff, reviewers and viewers see them and comment; staff withdraw
    "GET /api/v1/datasets": row(200),
    "GET /api/v1/datasets/{subject_id}": STAFF_SEE,
    "GET /api/v1/datasets/{subject_id}/events": STAFF_SEE,
    "GET /api/v1/datasets/views/{view}": row(200),  # each sees the rows of those they may
    "GET /api/v1/datasets/duplicates": row(200),  # each sees the pairs of those they may
    "GET /api/v1/datasets/overview": row(200),  # each a page of the datasets they may see
    "GET /api/v1/datasets/{dataset_id}/files": STAFF_SEE,
    "POST /api/v1/datasets/{dataset_id}/verify": _by_roles(
        "admin", "steward", hidden=("requester",)
    ),
    "POST /api/v1/datasets/{subject_id}:comment": STAFF_SEE,
    "POST /api/v1/datasets/{subject_id}:withdraw": _by_roles(
        "admin", "steward", hidden=("requester",)
    ),
    "POST /api/v1/packages": _by_roles("admin", "steward", ok=201),
    "POST /api/v1/packages/{package_id}/build": _by_roles(
        "admin", "steward", ok=202, hidden=("requester",)
    ),
    "GET /api/v1/packages/{package_id}/contents": STAFF_SEE,
    "GET /api/v1/packages/{package_id}/files": STAFF_SEE,
    "GET /api/v1/packages/{package_id}/validation": STAFF_SEE,
    "GET /api/v1/packages/{package_id}/report": STAFF_SEE,
    # queued (the second asker gets the same action), into STEWARD_API_PUSH_ROOTS
    "POST /api/v1/shares": _by_roles("admin", "steward", ok=202, hidden=("requester",)),
    # pushed only to a folder: staff hear there is nothing in S3 to sign links for
    "POST /api/v1/shares/presign": _by_roles("admin", "steward", ok=422, hidden=("requester",)),
    "GET /api/v1/shares/{share_id}/objects": STAFF_SEE,
    "GET /ga4gh/drs/v1/service-info": ALL,
    "OPTIONS /ga4gh/drs/v1/objects/{object_id}": ALL,
    "GET /ga4gh/drs/v1/objects/{object_id}": STAFF_SEE,
    "POST /ga4gh/drs/v1/objects/{object_id}": STAFF_SEE,
    "POST /ga4gh/drs/v1/objects": row(200),  # the unseen are listed as unresolved
    # a package in local storage has no https access method: nobody gets a link
    "GET /ga4gh/drs/v1/objects/{object_id}/access/{access_id}": row(404),
    "POST /ga4gh/drs/v1/objects/{object_id}/access/{access_id}": row(404),
    "GET /.well-known/jwks.json": ALL,
    "GET /api/v1/users/{user_id}/visas": row(404, admin=200, requester=200),
    "GET /api/v1/projects": row(200),
    "POST /api/v1/projects": ADMIN_ONLY,
    "GET /api/v1/projects/{project_id}": SEEN_BY_MEMBERS,
    "PUT /api/v1/projects/{project_id}/members/{user_id}": _by_roles("admin", "steward"),
    "GET /api/v1/users": row(200),  # the administrator all, anyone else themself
    "POST /api/v1/users": ADMIN_ONLY,
    "GET /api/v1/users/{user_id}": row(404, admin=200, requester=200),
    "PUT /api/v1/users/{user_id}/password": row(403, admin=200, requester=200),
    "POST /api/v1/users/{user_id}:disable": row(403, admin=200),
    "POST /api/v1/users/{user_id}:enable": row(403, admin=200),
    "POST /api/v1/tokens": row(201),
    "GET /api/v1/tokens": row(200),  # each their own
    "GET /api/v1/sessions": row(200),  # each their own
    "POST /api/v1/sessions/{session_id}:revoke": row(404, admin=200, requester=200),
    "POST /api/v1/tokens/{token_id}:revoke": row(404, admin=200, requester=200),
    "GET /api/v1/projects/{project_id}/requirements": SEEN_BY_MEMBERS,
    "POST /api/v1/projects/{project_id}/requirements": _by_roles("admin", "steward", ok=201),
    "GET /api/v1/projects/{project_id}/tree": SEEN_BY_MEMBERS,
    "POST /api/v1/projects/{project_id}/tree": _by_roles("admin", "steward", ok=201),
    "GET /api/v1/duo": row(200),
    "GET /api/v1/workflows": row(200),
    "GET /api/v1/workflows/{name}": row(200),
    "GET /api/v1/reports/tracking": row(200),  # each sees the rows they may see
    "GET /api/v1/reports/changelog": row(200),
    "GET /api/v1/reports/time-in-state": row(200),
    "GET /api/v1/reports/sla": row(200),
    "GET /api/v1/jobs": row(200),
    "GET /api/v1/jobs/{action_id}": row(404),
    # the project's staff see its actions and may cancel or retry them; to others, none
    "POST /api/v1/jobs/{action_id}:cancel": row(404, admin=200, steward=200),
    "POST /api/v1/jobs/{action_id}:retry": row(404, admin=200, steward=200),
    # crawls: whoever may crawl p1 (its steward, administrators); a crawl or schedule of p1
    # does not exist for anyone else, and the list is refused to who coordinates nothing
    "GET /api/v1/crawls": row(403, admin=200, steward=200),
    "GET /api/v1/crawls/{crawl_id}": row(404, admin=200, steward=200),
    "POST /api/v1/crawls": row(403, admin=202, steward=202),
    "GET /api/v1/crawl-sources": row(403, admin=200, steward=200),
    "GET /api/v1/crawl-schedules": row(200),  # each sees those they may
    "POST /api/v1/crawl-schedules": row(403, admin=201, steward=201),
    "DELETE /api/v1/crawl-schedules/{name}": row(404, admin=200, steward=200),
    "GET /api/v1/sites": row(200),  # administrators and stewards all, an analyst their own
    "POST /api/v1/sites": ADMIN_ONLY,
    "GET /api/v1/sites/{site_id}": row(404, admin=200, steward=200, analyst_a=200),
    "PUT /api/v1/sites/{site_id}/members/{user_id}": row(403, admin=200),
    "DELETE /api/v1/sites/{site_id}/members/{user_id}": row(403, admin=200),
    "GET /api/v1/audit": row(403, admin=200, steward=200),
    "GET /api/v1/session": row(200),
    "DELETE /api/v1/session": dict.fromkeys(CALLERS, 204),  # no session: nothing to end
    "POST /api/v1/session": dict.fromkeys(CALLERS, 201),  # signing in needs no token
    "POST /api/v1/auth/token": dict.fromkeys(CALLERS, 201),
    "GET /api/v1/auth/oidc/login": dict.fromkeys(CALLERS, 404),  # no provider set up here
    "GET /api/v1/auth/oidc/callback": dict.fromkeys(CALLERS, 401),  # no sign-in started
    "GET /healthz": ALL,
    "GET /readyz": ALL,
}


def test_every_endpoint_has_a_row(settings: Settings) -> None:
    from steward.api.app import create_app

    spec = create_app(settings).openapi()
    served = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    assert sorted(served - set(EXPECTED)) == []  # decide who may call it: add a row
    assert sorted(set(EXPECTED) - served) == []
    assert set(CALLS) == set(EXPECTED)


def test_every_caller_gets_exactly_the_answer_the_policy_gives(world: World) -> None:
    """One world, every endpoint, every caller; all differences are reported at once."""
    wrong = {}
    for op in sorted(EXPECTED):
        got = outcomes(world, CALLS[op])
        if got != EXPECTED[op]:
            wrong[op] = {c: (EXPECTED[op][c], got[c]) for c in CALLERS if got[c] != EXPECTED[op][c]}
    assert wrong == {}  # op: {caller: (expected, got)}


def test_refusals_are_in_the_audit_log(world: World) -> None:
    """A caller turned away from something of p1 (hidden or forbidden) leaves a trace."""
    from steward.db.models import AuditEntry

    outcomes(world, CALLS["POST /api/v1/requests/{subject_id}:approve"])
    outcomes(world, CALLS["GET /api/v1/requests/{subject_id}"])
    with world.c.db.read() as s:
        denied = {(a.actor, a.action) for a in s.query(AuditEntry).filter_by(outcome="denied")}
    assert {("ada", "approve"), ("vic", "approve"), ("ana", "show"), ("anb", "show")} <= denied
