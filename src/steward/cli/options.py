"""Options shared by several commands (filters, output) and their parsing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer

from steward.cli.state import STATE
from steward.errors import Detail, ValidationFailed
from steward.services import filters
from steward.services.kinds import Filter, Kind
from steward.services.requests import REQUEST
from steward.timeutil import parse_duration, utcnow

Project = Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")]
States = Annotated[
    list[str] | None,
    typer.Option("--state", "-s", help="Only these states (repeat the option for several)."),
]
Limit = Annotated[
    int | None, typer.Option(min=0, help="At most this many rows (0 or absent: all).")
]
Sort = Annotated[
    str,
    typer.Option(
        help="Order: created, updated, since (entered its state), state or id; a leading '-' "
        "reverses (newest first: -created)."
    ),
]
Requester = Annotated[str | None, typer.Option(help="Only requests filed by this user.")]
Reviewer = Annotated[str | None, typer.Option(help="Only requests assigned to this reviewer.")]
CreatedFrom = Annotated[
    str | None, typer.Option(help="Created on or after this date/time (YYYY-MM-DD, in --tz).")
]
CreatedTo = Annotated[
    str | None,
    typer.Option(help="Created on or before this date (whole day included) or before this time."),
]
CompletedFrom = Annotated[
    str | None, typer.Option(help="Completed on or after this date/time (YYYY-MM-DD, in --tz).")
]
CompletedTo = Annotated[
    str | None,
    typer.Option(help="Completed on or before this date (whole day) or before this time."),
]
DecidedFrom = Annotated[
    str | None, typer.Option(help="Decided on or after this date/time (YYYY-MM-DD, in --tz).")
]
DecidedTo = Annotated[
    str | None,
    typer.Option(help="Decided on or before this date (whole day included) or before this time."),
]


def _option(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def parse_bound(text: str | None, field: str, *, end: bool) -> datetime | None:
    """A date means the whole day in the display zone; a datetime is taken as given."""
    return filters.parse_bound(text, field, end=end, tz=STATE.tz, spell=_option)


def states(given: list[str] | None) -> tuple[str, ...]:
    """State names as typed: case and surrounding spaces do not matter (DUO codes ignore case
    too), so `--state Approved` means approved."""
    return filters.states(given)


def filter_of(
    kind: Kind,
    *,
    project: str | None,
    state: list[str] | None,
    limit: int | None = None,
    **given: str | None,
) -> Filter:
    """A kind's list filter from its options as typed: states in any case, dates in --tz
    (``*_to`` dates include their whole day); every problem is reported before anything is
    read."""
    return filters.filter_from_text(
        kind, project=project, state=state, tz=STATE.tz, limit=limit, spell=_option, **given
    )


def request_filter(
    project: str | None,
    state: list[str] | None,
    requester: str | None,
    reviewer: str | None,
    created_from: str | None,
    created_to: str | None,
    decided_from: str | None,
    decided_to: str | None,
    limit: int | None = None,
) -> Filter:
    return filter_of(
        REQUEST,
        project=project,
        state=state,
        limit=limit,
        requester=requester,
        reviewer=reviewer,
        created_from=created_from,
        created_to=created_to,
        decided_from=decided_from,
        decided_to=decided_to,
    )


def parse_lifetime(text: str, field: str = "expires") -> timedelta:
    """``12h``, ``7d``, ``2w``: how long something (a link, a token) lasts."""
    try:
        return parse_duration(text)
    except ValueError:
        raise ValidationFailed(
            f"--{field} {text!r} is not a duration",
            [Detail("not a duration", field=field, value=text, accepted="e.g. 12h, 7d, 2w")],
        ) from None


def parse_expiry(text: str | None) -> datetime | None:
    """``365d`` from now, or an absolute date/time."""
    if text is None:
        return None
    try:
        return utcnow() + parse_duration(text)
    except OverflowError:
        raise ValidationFailed(
            f"--expires {text!r} is too far in the future",
            [
                Detail(
                    "too far",
                    field="expires",
                    value=text,
                    accepted="a duration such as 365d or a date",
                )
            ],
        ) from None
    except ValueError:
        pass
    value = parse_bound(text, "expires", end=False)
    assert value is not None
    return value
