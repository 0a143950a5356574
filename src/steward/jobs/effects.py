"""What each kind of outbox action does, and which long job (if any) runs it.

Every handler is idempotent by the action's key: running it again after a crash continues
the same work instead of doing it twice.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from steward.config import Settings
from steward.db.session import Database
from steward.errors import Detail
from steward.jobs import runner
from steward.jobs.outbox import Delivery, Handler, PermanentFailure
from steward.services import crawl_jobs, package_build, shares

PACKAGE_BUILD = package_build.JOB.action
SHARE_PUSH = shares.PUSH_JOB.action
CRAWL = crawl_jobs.ACTION
WEBHOOK = "webhook"

JOBS = runner.JOBS
"""Actions that run a long job on their subject (cancel reaches the job; progress is its)."""
WITH_PROGRESS = frozenset({CRAWL})
"""Other actions whose work writes progress (``job_progress``) on its subject: a crawl, which
is not a tracked kind; a cancel reaches it through the action (see :mod:`.crawl_jobs`)."""

WEBHOOK_TIMEOUT = 30.0


def handlers(db: Database, settings: Settings) -> dict[str, Handler]:
    def build(d: Delivery) -> dict[str, Any]:
        # A later try, or one retried by hand, continues a build the earlier try left failed.
        again = d.attempt > 1 or bool(d.payload.get("again"))
        view = package_build.build_queued(
            db, settings, actor=d.created_by, package_id=d.subject_id, again=again
        )
        return {"state": view.state, "file_count": view.file_count}

    def push(d: Delivery) -> dict[str, Any]:
        view = shares.push_queued(
            db,
            settings,
            actor=d.created_by,
            share_id=d.subject_id,
            destination=str(d.payload["destination"]),
            concurrency=d.payload.get("concurrency"),
        )
        return {"state": view.state, "object_count": view.object_count}

    def crawl(d: Delivery) -> dict[str, Any]:
        summary = crawl_jobs.run_queued(db, settings, d)
        return {"crawl": summary.id, "status": summary.status, "events": summary.events}

    return {PACKAGE_BUILD: build, SHARE_PUSH: push, CRAWL: crawl, WEBHOOK: webhook}


def webhook(d: Delivery) -> dict[str, Any]:
    """POST the payload's ``body`` as JSON to its ``url``, with the action's key in
    ``Idempotency-Key`` so the receiver can drop a repeat (a worker killed after sending but
    before recording sends again). 4xx (but 408/429) is final; anything else is retried."""
    url = str(d.payload.get("url", ""))
    if not url.startswith(("http://", "https://")):
        raise PermanentFailure(
            "a webhook needs an http(s) URL",
            [Detail("not a URL", field="url", value=url, accepted="http://… or https://…")],
        )
    request = urllib.request.Request(
        url,
        data=json.dumps(d.payload.get("body", {})).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": d.idempotency_key,
            "X-Steward-Action": d.id,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
            return {"status": response.status}
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PermanentFailure(
                f"{url} refused the webhook: HTTP {exc.code}",
                [Detail("refused", field="url", value=url)],
            ) from None
        raise
