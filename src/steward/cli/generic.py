"""The CLI of a tracked kind, generated from its registry declaration.

A kind declared with :func:`steward.services.kinds.register` gets ``steward <kind> list``
(its filters as options, ``--sort``, ``--limit``), ``show`` (fields, what you may do now,
timeline), ``history`` and one command per command people may issue, whose options are the
fields of that command's payload model — without a line of CLI code. Kinds whose users want
more (requests, packages, shares) keep their own hand-written groups; a kind without one is
given this group under its ``id_field`` name (``steward dataset …``).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.panel import Panel

from steward.cli import backend, render
from steward.cli import options as o
from steward.cli.state import STATE
from steward.remote import subjects as remote_subjects
from steward.services import subjects
from steward.services.kinds import Kind
from steward.services.timeline import History
from steward.tables import Column, Table
from steward.timeutil import format_time

LIST_COLUMNS = ("id", "project_id", "state", "state_since", "created_at", "updated_at")
"""Columns every kind's list shows (every read model has them), its filter fields after."""


def group_for(kind: Kind) -> typer.Typer:
    """``steward <kind> …`` for ``kind``: list, show, history and its people's commands."""
    label = kind.label
    app = typer.Typer(
        help=f"{label[0].upper()}{label[1:]}s: list, show, history and act on them. "
        f"States and who may do what: `steward workflow show {kind.workflow.name}`.",
        no_args_is_help=True,
    )
    app.command("list")(_list(kind))
    app.command("show")(_show(kind))
    app.command("history")(_history(kind))
    for name, (command, _) in kind.offered().items():
        app.command(name)(_act(kind, name, command.payload))
    return app


def _make(
    name: str, doc: str, params: list[inspect.Parameter], body: Callable[..., None]
) -> Callable[..., None]:
    """A function Typer reads as if written by hand: ``params`` are its signature."""

    def command(**kwargs: Any) -> None:
        body(**kwargs)

    command.__name__ = name.replace("-", "_")
    command.__doc__ = doc
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def _id_param(kind: Kind) -> inspect.Parameter:
    return inspect.Parameter(
        "subject_id",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[str, typer.Argument(help=f"The {kind.label}'s id.")],
    )


def _option(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


# ---- list ---------------------------------------------------------------------------------


def _list(kind: Kind) -> Callable[..., None]:
    spec = kind.filters
    params = [
        _option("project", o.Project),
        _option("state", o.States),
        *(
            _option(n, Annotated[str | None, typer.Option(help=_text_help(kind, n))])
            for n in spec.texts
        ),
        *(
            _option(
                b,
                Annotated[
                    str | None,
                    typer.Option(
                        help=f"{b.rsplit('_', 1)[0].capitalize()} "
                        + ("on or after" if b.endswith("_from") else "on or before")
                        + " this date/time (YYYY-MM-DD, in --tz)."
                    ),
                ],
            )
            for b in spec.bounds
        ),
        _option("limit", o.Limit),
        _option("sort", o.Sort, "created"),
    ]

    def body(project: str | None, state: list[str] | None, limit: int | None, sort: str,
             **given: str | None) -> None:  # fmt: skip
        flt = o.filter_of(kind, project=project, state=state, limit=limit, **given)
        views = backend.listed(
            kind, flt, sort,
            lambda: subjects.list_(STATE.db, kind, actor=STATE.actor, flt=flt, sort=sort),
        )  # fmt: skip
        if STATE.json:
            render.emit_json(views)
            return
        names = [*LIST_COLUMNS, *(n for n in _view_fields(kind) if n in _filter_columns(kind))]
        render.show_table(
            Table(
                f"{kind.label}s",
                [Column(n, "time" if _is_time(kind, n) else "text") for n in names],
                [tuple(getattr(v, n) for n in names) for v in views],
            )
        )

    return _make("list", f"List the {kind.label}s you may see; filters combine.", params, body)


def _text_help(kind: Kind, name: str) -> str:
    spec = kind.filters
    if name in spec.choices:
        return f"Only this {name}: {', '.join(spec.choices[name])}."
    if name in spec.contains:
        return f"Only {kind.label}s whose {name} contains this text."
    return f"Only {kind.label}s with this {name}."


def _filter_columns(kind: Kind) -> set[str]:
    spec = kind.filters
    return {*spec.equals.values(), *spec.contains.values(), *spec.choices}


def _view_fields(kind: Kind) -> list[str]:
    return list(kind.view.model_fields)


def _is_time(kind: Kind, name: str) -> bool:
    field = kind.view.model_fields.get(name)
    return field is not None and datetime in _types(field.annotation)


def _types(annotation: Any) -> set[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation))
    return {annotation}


# ---- show and history ---------------------------------------------------------------------


def _show(kind: Kind) -> Callable[..., None]:
    def body(subject_id: str) -> None:
        view, history, allowed = _detail(kind, subject_id)
        if STATE.json:
            render.emit_json(
                {
                    kind.id_field: view,
                    "timeline": history.timeline,
                    "time_in_state": history.time_in_state,
                    "current_state_for": history.current_state_for,
                    "available_actions": allowed,
                }
            )
            return
        tz = STATE.tz
        rows: list[tuple[str, Any]] = []
        for name, value in view.model_dump().items():
            shown = format_time(value, tz) if isinstance(value, datetime) else value
            if name == "state":
                shown = render.state_for(value, history.current_state_for)
            rows.append((name, shown))
        rows.append(("you may now", ", ".join(allowed) or "nothing"))
        STATE.out.print(Panel(render.kv_table(rows), title=view.id, title_align="left"))
        render.show_timeline(history.timeline)

    return _make(
        "show",
        f"A {kind.label}'s fields, what you may do now, and its timeline.",
        [_id_param(kind)],
        body,
    )


def _detail(kind: Kind, subject_id: str) -> tuple[Any, History, list[str]]:
    """The subject's view, history and the commands the caller may issue now: from the
    database, or from the server's detail and events."""
    client = STATE.remote
    if client is not None:
        view, found = remote_subjects.detail(client, kind, subject_id)
        return view, History.model_validate(found), list(found["allowed_actions"])
    local = subjects.get(STATE.db, kind, actor=STATE.actor, subject_id=subject_id)
    return kind.view_of(local.row), local.history, local.allowed_actions


def _history(kind: Kind) -> Callable[..., None]:
    def body(subject_id: str) -> None:
        client = STATE.remote
        history = (
            subjects.history_of(STATE.db, kind, actor=STATE.actor, subject_id=subject_id)
            if client is None
            else History.model_validate(remote_subjects.detail(client, kind, subject_id)[1])
        )
        if STATE.json:
            render.emit_json({"timeline": history.timeline, "time_in_state": history.time_in_state})
            return
        render.show_timeline(history.timeline)

    return _make(
        "history",
        f"A {kind.label}'s timeline, with the time it spent in each state.",
        [_id_param(kind)],
        body,
    )


# ---- commands -----------------------------------------------------------------------------


def _act(kind: Kind, command: str, payload: type[BaseModel]) -> Callable[..., None]:
    fields = payload.model_fields
    params = [_id_param(kind)]
    for name, field in fields.items():
        required = field.is_required()
        help_text = field.description or f"The {command} command's {name}."
        if list in {typing.get_origin(t) for t in _types(field.annotation)}:
            annotation: Any = Annotated[
                list[str] | None, typer.Option(help=help_text + " Repeat for several.")
            ]
        elif bool in _types(field.annotation):
            annotation = Annotated[bool, typer.Option(help=help_text)]
        else:
            annotation = Annotated[
                str | None if not required else str, typer.Option(help=help_text)
            ]
        default = inspect.Parameter.empty if required else (False if bool in _types(
            field.annotation) else None)  # fmt: skip
        params.append(_option(name, annotation, default))
    params += [
        _option(
            "if_version",
            Annotated[
                int | None,
                typer.Option(help="Refuse if it changed since you saw this version (conflict)."),
            ],
        ),
        _option(
            "key",
            Annotated[
                str | None,
                typer.Option(help="Idempotency key: sending it again changes nothing more."),
            ],
        ),
    ]
    verb = kind.workflow.event_for(command).replace("_", " ")
    description = next(
        (t.description for t in kind.workflow.transitions if t.command == command), ""
    )

    def body(subject_id: str, if_version: int | None, key: str | None, **given: Any) -> None:
        data = {k: v for k, v in given.items() if v not in (None, [])}
        view = backend.acted(
            kind, subject_id, command,
            lambda: subjects.act(
                STATE.db, kind, actor=STATE.actor, subject_id=subject_id, command=command,
                payload=data, idempotency_key=key, expected_version=if_version,
            ),
            idempotency_key=key, expected_version=if_version, **data,
        )  # fmt: skip
        render.done(view, verb)

    doc = (description[0].upper() + description[1:] + ".") if description else command
    return _make(command, doc, params, body)
