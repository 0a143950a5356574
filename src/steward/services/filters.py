"""List and report filters from text as people type it — the CLI's options and the API's query
parameters read the same way: states in any case, a date meaning the whole day in the caller's
zone (``*_to`` dates include their day), a date-time taken as given (in that zone when it
names none), and every problem of the filter reported before anything is read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from steward.errors import Detail, ValidationFailed
from steward.services import subjects
from steward.services.kinds import Filter, Kind

DATE_ACCEPTED = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM]"


def _as_given(field: str) -> str:
    return field


def parse_bound(
    text: str | None,
    field: str,
    *,
    end: bool,
    tz: ZoneInfo,
    spell: Callable[[str], str] = _as_given,
) -> datetime | None:
    """A date means the whole day in ``tz`` (``end``: up to the next day's start); a date-time
    is taken as given, in ``tz`` when it names no zone. ``spell`` names the field in the
    message as the caller typed it (``--created-from`` on the command line)."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            if end:
                day = day + timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=tz)
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=tz)
    except (ValueError, OverflowError):
        raise ValidationFailed(
            f"{spell(field)} {text[:80]!r} is not a date",
            [Detail("not a date", field=field, value=text, accepted=DATE_ACCEPTED)],
        ) from None


def states(given: Iterable[str] | None) -> tuple[str, ...]:
    """State names as typed: case and surrounding spaces do not matter (DUO codes ignore case
    too), so ``Approved`` means approved."""
    return tuple(s.strip().lower() for s in given or ())


def filter_from_text(
    kind: Kind,
    *,
    project: str | None,
    state: Iterable[str] | None,
    tz: ZoneInfo,
    limit: int | None = None,
    spell: Callable[[str], str] = _as_given,
    **given: str | None,
) -> Filter:
    """A kind's list filter from its fields as typed (``given``: its text filters and date
    bounds by name), checked as a whole (:func:`steward.services.subjects.check`)."""
    bounds = kind.filters.bounds
    values = {
        name: parse_bound(text, name, end=name.endswith("_to"), tz=tz, spell=spell)
        if name in bounds
        else text
        for name, text in given.items()
    }
    flt = kind.filter(project=project, states=states(state), limit=limit, **values)
    subjects.check(kind, flt)
    return flt
