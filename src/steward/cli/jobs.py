"""``steward jobs …`` (queue state, retry, cancel) and ``steward worker``."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer
from rich.panel import Panel

from steward.cli import render
from steward.cli.backend import run
from steward.cli.state import STATE
from steward.jobs import service
from steward.jobs.service import ActionView
from steward.tables import Column, Table

app = typer.Typer(
    help="The queue: outbox actions (builds, pushes, webhooks), their progress, retry, cancel.",
    no_args_is_help=True,
)

ActionId = Annotated[str, typer.Argument(help="Action id (act_…).")]


def register(root: typer.Typer) -> None:
    """Add ``jobs`` and ``worker`` to the root command."""
    root.add_typer(app, name="jobs")
    root.command("worker")(worker)


def _progress(v: ActionView) -> str:
    p = v.progress
    if p is None:
        return ""
    if p.bytes_total:
        text = f"{render.size(p.bytes_done)} of {render.size(p.bytes_total)}"
    elif p.items_total:
        text = f"{p.items_done} of {p.items_total}"
    else:
        return ""
    if v.state == "running" and p.eta_seconds is not None:
        text += f", ~{round(p.eta_seconds)}s left"
    return text


def _done(v: ActionView, verb: str) -> None:
    if STATE.json:
        render.emit_json(v)
    else:
        STATE.out.print(f"{v.id} {verb}: now [bold]{v.state}[/bold]")


@app.command("list")
def list_(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            "-s",
            help="Only actions in this state: pending, running, done, failed, cancelled "
            "(repeatable).",
        ),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only actions on this subject (pkg_…, shr_…).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many, newest first.")] = None,
) -> None:
    """Actions in the queue, newest first, with how far each running job is."""
    views = run(service.list_actions, states=tuple(state or ()), subject=subject, limit=limit)
    if STATE.json:
        render.emit_json(views)
        return
    render.show_table(
        Table(
            "actions",
            [
                Column("id"),
                Column("action"),
                Column("subject"),
                Column("state"),
                Column("attempts", "int"),
                Column("progress"),
                Column("next try", "time"),
                Column("last error"),
                Column("created", "time"),
            ],
            [
                (
                    v.id,
                    v.action,
                    v.subject_id,
                    v.state,
                    v.attempts,
                    _progress(v),
                    v.next_try_at if v.state == "pending" else None,
                    (v.last_error or "").splitlines()[0] if v.last_error else "",
                    v.created_at,
                )
                for v in views
            ],
        ),
        limit_width=("last error",),
    )


@app.command()
def show(action_id: ActionId) -> None:
    """One action: its subject, attempts, lease, last error, outcome and progress."""
    v = run(service.get, action_id=action_id)
    if STATE.json:
        render.emit_json(v)
        return
    STATE.out.print(
        Panel(
            render.kv_table(
                [
                    ("id", v.id),
                    ("action", v.action),
                    ("subject", f"{v.subject_kind} {v.subject_id}"),
                    ("state", v.state),
                    ("attempts", f"{v.attempts} of {v.max_attempts}"),
                    ("next try", v.next_try_at if v.state == "pending" else None),
                    ("held by", v.owner),
                    ("lease until", v.lease_until),
                    ("progress", _progress(v) or None),
                    ("last error", v.last_error),
                    ("outcome", v.outcome),
                    ("idempotency key", v.idempotency_key),
                    ("created", f"{v.created_at:%Y-%m-%d %H:%M:%S} UTC by {v.created_by}"),
                ]
            ),
            title=v.id,
        )
    )


@app.command()
def retry(action_id: ActionId) -> None:
    """Queue a failed or cancelled action again (a job continues what it had done)."""
    _done(run(service.retry, action_id=action_id), "queued again")


@app.command()
def cancel(action_id: ActionId) -> None:
    """Cancel a pending action; a running job is asked to stop and records why."""
    v = run(service.cancel, action_id=action_id)
    _done(v, "cancelled" if v.state == "cancelled" else "asked to stop")


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Jobs and effects run at once in this process.")
    ] = 2,
    drain: Annotated[
        bool,
        typer.Option(
            "--drain",
            "--once",
            help="Run what is due now, then exit (tests, cron); by default run until stopped.",
        ),
    ] = False,
) -> None:
    """Drain the outbox and run jobs (builds, pushes, webhooks) and periodic tasks.

    Takes work from the queue named by STEWARD_QUEUE_URL (default: a SQLite queue in
    STEWARD_HOME). SIGTERM or Ctrl-C: builds and pushes running now are handed back (the
    next worker resumes them), other effects finish, then the worker exits.
    Periodic tasks (expire due requests and packages) run as --as/STEWARD_USER when given.
    """
    from steward.jobs.worker import Worker

    def event(line: str) -> None:
        if not STATE.json:
            STATE.err.print(line, markup=False, highlight=False)

    w = Worker(STATE.db, STATE.settings, concurrency=concurrency, actor=STATE.actor, on_event=event)

    def stop(signum: int, _frame: FrameType | None) -> None:
        event(
            f"signal {signum}: builds and pushes running now are handed back for the next "
            "worker, other effects finish; then the worker exits"
        )
        w.shut_down()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if drain:
            w.drain()
        else:
            event(f"worker started: {concurrency} at once; stop with Ctrl-C or SIGTERM")
            w.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = {"delivered": w.stats.delivered, "periodic": w.stats.periodic}
    if STATE.json:
        render.emit_json(summary)
    else:
        done = ", ".join(f"{n} {s}" for s, n in sorted(w.stats.delivered.items())) or "nothing"
        STATE.out.print(f"worker stopped: {done}")
