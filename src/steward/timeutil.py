"""Time: stored in UTC, shown in any IANA zone, durations never negative by accident."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from steward.errors import Detail, ValidationFailed


def utcnow() -> datetime:
    return datetime.now(UTC)


def zone(name: str) -> ZoneInfo:
    try:
        if not name.strip():
            raise ValueError(name)  # an empty --tz (an unset variable) is not "UTC"
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder
        raise ValidationFailed(
            f"unknown time zone {name!r}",
            [
                Detail(
                    "not an IANA time zone",
                    field="tz",
                    value=name,
                    accepted="names such as UTC, Europe/Helsinki, America/New_York",
                )
            ],
        ) from None


def naive_times(**values: datetime | None) -> list[Detail]:
    """Times without a UTC offset are ambiguous: name each one rather than guess its zone."""
    return [
        Detail(
            "no UTC offset",
            field=name,
            value=value.isoformat(),
            accepted="a time with its zone, e.g. 2026-03-01T09:30:00+02:00",
        )
        for name, value in values.items()
        if value is not None and value.tzinfo is None
    ]


def require_aware(**values: datetime | None) -> None:
    problems = naive_times(**values)
    if problems:
        raise ValidationFailed("times must say which zone they are in", problems)


def as_utc(value: datetime) -> datetime:
    """Attach UTC to naive values read back from SQLite (which stores no offset)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_timestamp(text: str, *, assume: ZoneInfo | None = None) -> datetime:
    """ISO 8601 timestamp → aware UTC datetime.

    A timestamp without an offset is ambiguous; it is refused unless the caller says which
    zone it is in (``assume``), because silently stripping zones is how the seed system got
    negative durations.
    """
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        if assume is None:
            raise ValueError(
                "timestamp has no UTC offset (add one, e.g. +00:00, or say which zone it is "
                "in with --assume-tz)"
            )
        value = local_time(value, assume)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{text.strip()} is out of the range of representable times") from None


def local_time(value: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in ``tz``, refused when the zone makes it ambiguous.

    Around a change of offset a local time may not exist (clocks skipped it) or may have
    happened twice (clocks went back); choosing one silently is how histories get events an
    hour out of order, so say which and ask for the offset.
    """
    first, second = value.replace(tzinfo=tz, fold=0), value.replace(tzinfo=tz, fold=1)
    a, b = first.utcoffset(), second.utcoffset()
    if a == b:
        return first
    shown = value.isoformat(timespec="seconds")
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise ValueError(
            f"{shown} did not exist in {tz.key} (the clocks skipped it when the offset "
            f"changed from {_offset(a)} to {_offset(b)}); give the offset meant"
        )
    raise ValueError(
        f"{shown} happened twice in {tz.key} (at {_offset(a)} and again at {_offset(b)}, "
        "when the clocks went back); give the offset meant, e.g. "
        f"{shown}{_offset(a)}"
    )


def _offset(delta: timedelta | None) -> str:
    seconds = int((delta or timedelta(0)).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}"


def format_duration(seconds: float | None) -> str:
    """Human duration such as ``3d 4h`` or ``12m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}s: the events are out of order")
    delta = timedelta(seconds=round(seconds))
    days, rest = delta.days, delta.seconds
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{delta.seconds}s"


def format_time(value: datetime | None, tz: ZoneInfo) -> str:
    """Minutes and the zone's offset ("2026-03-01 14:05 +02:00"): a time on screen without
    its offset is ambiguous as soon as two people compare notes."""
    if value is None:
        return "-"
    local = as_utc(value).astimezone(tz)
    offset = local.strftime("%z")  # +0530
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def parse_duration(text: str) -> timedelta:
    """``4d``, ``36h``, ``90m``, ``2w`` → timedelta (used for SLAs and expiries)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip().lower()
    number = text[:-1].replace(".", "", 1)
    if len(text) < 2 or text[-1] not in units or not (number.isascii() and number.isdigit()):
        raise ValueError(f"{text!r} is not a duration (use e.g. 90m, 36h, 4d, 2w)")
    try:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None
