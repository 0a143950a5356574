"""Packages through a server's API, as :mod:`steward.services.packages` and
:mod:`steward.services.package_build` do them locally: same arguments (less the database),
same views, same errors.

A build runs on the server's worker, never in the CLI's process: ``create`` uploads the
manifests and the server queues the build; :func:`follow` then watches the queued action,
turning its progress into the same progress bar, until the package is built or stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from steward.errors import Detail, StewardError, ValidationFailed
from steward.jobs.service import ActionView
from steward.remote import subjects
from steward.remote.client import Client
from steward.services.package_build import BuildProgress
from steward.services.package_uploads import Created
from steward.services.packages import (
    PACKAGE,
    PackageDetail,
    PackageFileView,
    PackageSpec,
    PackageView,
    ValidationReport,
)

if TYPE_CHECKING:
    import httpx  # imported for the one call that needs its own timeout

V1 = "/api/v1"
BASE = f"{V1}/packages"
POLL_SECONDS = 0.5
IDLE = 10.0
"""After this long with the job not yet taken, say that a worker must take it."""


def _check_timeout() -> httpx.Timeout:
    """No read limit: the server reads every byte of the package before it answers."""
    import httpx

    return httpx.Timeout(None, connect=10.0)


FINAL = ("done", "failed", "cancelled")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _manifest(path: Path, field: str) -> Path:
    if not path.is_file():
        raise ValidationFailed(
            f"cannot upload {path}: no such file",
            [Detail("no such file", field=field, value=str(path),
                    accepted="a CSV, TSV or XLSX manifest on this machine")],
        )  # fmt: skip
    return path


def create(client: Client, *, project: str, spec: PackageSpec, build: bool = True) -> Created:
    """Upload the manifest(s) with ``spec``'s options; the server queues the build. Paths in
    ``spec`` other than the manifests (``base_dir``, ``allowed_roots``) are the server's."""
    data: dict[str, Any] = {
        "name": spec.name,
        "project": project,
        "layout": spec.layout,
        "mode": spec.mode,
        "description": spec.description,
        "build": _flag(build),
        "data_type": list(spec.data_types),
        "only_project": list(spec.projects),
        "sample": list(spec.samples),
        "library": list(spec.libraries),
        "run": list(spec.runs),
        "allow_root": [str(r) for r in spec.allowed_roots],
    }
    if spec.base_dir is not None:
        data["base_dir"] = str(spec.base_dir)
    if spec.strict_ids is not None:
        data["strict_ids"] = _flag(spec.strict_ids)
    uploads = [("manifest", _manifest(spec.manifest, "manifest"))]
    if spec.workflow_manifest is not None:
        uploads.append(
            ("workflow_manifest", _manifest(spec.workflow_manifest, "workflow_manifest"))
        )
    with ExitStack() as stack:
        files: list[tuple[str, tuple[str, IO[bytes], str]]] = [
            (field, (path.name, stack.enter_context(path.open("rb")), "application/octet-stream"))
            for field, path in uploads
        ]
        answer = client.send("POST", BASE, data=data, files=files).json()
    return Created(
        package=PackageView.model_validate(answer["package"]),
        created=bool(answer["created"]),
        action_id=answer["action_id"],
        warnings=list(answer["warnings"]),
    )


def request_build(client: Client, *, package_id: str) -> tuple[PackageView, str]:
    answer = client.call("POST", f"{BASE}/{package_id}/build")
    return PackageView.model_validate(answer["package"]), str(answer["action_id"])


def view(client: Client, *, package_id: str) -> PackageView:
    return PackageView.model_validate(client.call("GET", f"{BASE}/{package_id}")["item"])


def get(client: Client, *, package_id: str) -> PackageDetail:
    item, found = subjects.detail(client, PACKAGE, package_id)
    contents = client.call("GET", f"{BASE}/{package_id}/contents")
    return PackageDetail(
        package=item,
        bag_path=contents["bag_path"],
        **subjects.history_fields(found),
        files_by_data_type=contents["files_by_data_type"],
        bytes_by_data_type=contents["bytes_by_data_type"],
        warnings=contents["warnings"],
    )


def files(client: Client, *, package_id: str) -> list[PackageFileView]:
    found = client.pages(f"{BASE}/{package_id}/files", [("limit", "5000")], None)
    return [PackageFileView.model_validate(f) for f in found]


def validate(client: Client, *, package_id: str, full: bool) -> ValidationReport:
    answer = client.send(
        "GET", f"{BASE}/{package_id}/validation", params=[("full", _flag(full))],
        timeout=_check_timeout(),
    )  # fmt: skip
    return ValidationReport.model_validate(answer.json())


def report(client: Client, *, package_id: str) -> bytes:
    """The package's report.html, as the server keeps it in the bag."""
    answer = client.fetch(
        "GET", f"{BASE}/{package_id}/report", params=[("format", "html")],
        headers={"Accept": "text/html"},
    )  # fmt: skip
    return answer.content


def act(client: Client, *, package_id: str, command: str, **given: Any) -> PackageView:
    done: PackageView = subjects.act(
        client, PACKAGE, subject_id=package_id, command=command, **given
    )
    return done


def job(client: Client, action_id: str) -> ActionView:
    return ActionView.model_validate(client.call("GET", f"{V1}/jobs/{action_id}"))


def follow(
    client: Client,
    action_id: str,
    *,
    progress: BuildProgress | None = None,
    idle: Callable[[ActionView], None] | None = None,
    stopped: Callable[[ActionView], bool] | None = None,
) -> ActionView:
    """Watch a queued action until it ends (or ``stopped`` says its subject has stopped while
    it waits to be tried again), feeding ``progress`` from the server's figures; ``idle`` is
    told once when nobody has taken the action for a while."""
    progress = progress or BuildProgress()
    started = time.monotonic()
    shown_bytes = shown_items = 0
    began = hinted = False
    while True:
        found = job(client, action_id)
        p = found.progress
        if p is not None:
            if not began and progress.start is not None:
                progress.start(p.bytes_total or 0, p.items_total or 0)
            began = True
            if progress.advance is not None and (
                p.bytes_done > shown_bytes or p.items_done > shown_items
            ):
                progress.advance(p.bytes_done - shown_bytes, p.items_done - shown_items)
            shown_bytes, shown_items = p.bytes_done, p.items_done
        if found.state in FINAL:
            return found
        if found.state == "pending" and found.attempts and stopped is not None and stopped(found):
            return found  # a try failed; the worker tries again later, on its own
        untaken = found.state == "pending" and not found.attempts
        if untaken and idle is not None and not hinted and time.monotonic() - started >= IDLE:
            idle(found)
            hinted = True
        time.sleep(POLL_SECONDS)


def follow_build(
    client: Client,
    package_id: str,
    action_id: str,
    *,
    progress: BuildProgress | None = None,
    idle: Callable[[ActionView], None] | None = None,
) -> PackageView:
    """The package once its queued build ended: built, or an error saying why not."""

    def failed(_: ActionView) -> bool:
        return view(client, package_id=package_id).state not in ("pending", "building")

    found = follow(client, action_id, progress=progress, idle=idle, stopped=failed)
    done = view(client, package_id=package_id)
    if done.state == "built":
        return done
    reason = done.failure_reason or found.last_error or found.state
    again = " (the worker tries again later)" if found.state == "pending" else ""
    raise StewardError(
        f"the build of {package_id} stopped: {reason}; {package_id} is {done.state}{again}",
        [Detail("build stopped", field="package", value=package_id, accepted="built")],
    )
