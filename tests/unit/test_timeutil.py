"""Time: stored in UTC, shown in any zone, durations never negative by accident."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.errors import ValidationFailed
from steward.timeutil import (
    as_utc,
    format_duration,
    format_time,
    parse_duration,
    parse_timestamp,
    utcnow,
    zone,
)

HELSINKI = ZoneInfo("Europe/Helsinki")
UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION = re.compile(r"^(\d+d \d+h|\d+h \d+m|\d+m|\d+s)$")


# ---- timestamps ------------------------------------------------------------------------------


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.tzinfo is UTC
    assert now.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00+00:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00+02:00", datetime(2026, 3, 1, 7, 30, tzinfo=UTC)),
        ("2026-03-01T01:30:00-05:00", datetime(2026, 3, 1, 6, 30, tzinfo=UTC)),
        ("2026-03-01 00:30:00+03:00", datetime(2026, 2, 28, 21, 30, tzinfo=UTC)),
        ("  2026-03-01T09:30:00.250Z  ", datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)),
    ],
)
def test_offsets_are_converted_to_utc(text: str, expected: datetime) -> None:
    value = parse_timestamp(text)
    assert value == expected
    assert value.utcoffset() == timedelta(0)
    assert (value.hour, value.minute) == (expected.hour, expected.minute)


@pytest.mark.parametrize("text", ["2026-03-01T09:30:00", "2026-03-01", "2026-03-01 09:30"])
def test_naive_timestamps_are_refused_unless_a_zone_is_assumed(text: str) -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("text", "expected_utc"),
    [
        # summer time: EEST is UTC+3
        ("2024-07-01T12:00:00", datetime(2024, 7, 1, 9, 0, tzinfo=UTC)),
        # winter time: EET is UTC+2
        ("2024-01-15T12:00:00", datetime(2024, 1, 15, 10, 0, tzinfo=UTC)),
        # the night the clocks go forward (03:00 → 04:00 local on 31 March 2024)
        ("2024-03-31T02:30:00", datetime(2024, 3, 31, 0, 30, tzinfo=UTC)),
        ("2024-03-31T04:30:00", datetime(2024, 3, 31, 1, 30, tzinfo=UTC)),
    ],
)
def test_naive_timestamps_take_the_assumed_zone(text: str, expected_utc: datetime) -> None:
    value = parse_timestamp(text, assume=HELSINKI)
    assert value == expected_utc
    assert value.utcoffset() == timedelta(0)
    assert value.hour == expected_utc.hour


def test_an_explicit_offset_wins_over_the_assumed_zone() -> None:
    value = parse_timestamp("2024-07-01T12:00:00+00:00", assume=HELSINKI)
    assert value == datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "01/03/2026 09:30"])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid isoformat|must be in"):
        parse_timestamp(text)


def test_as_utc_attaches_utc_to_naive_values_and_converts_aware_ones() -> None:
    naive = datetime(2026, 3, 1, 9, 30)
    assert as_utc(naive) == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert as_utc(naive).utcoffset() == timedelta(0)
    aware = datetime(2026, 7, 1, 12, 0, tzinfo=HELSINKI)
    assert as_utc(aware).hour == 9
    assert as_utc(aware).utcoffset() == timedelta(0)


def test_format_time_shows_utc_values_in_the_chosen_zone() -> None:
    value = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
    assert format_time(value, HELSINKI) == "2024-07-01 12:00 +03:00"
    assert format_time(value, ZoneInfo("UTC")) == "2024-07-01 09:00 +00:00"
    assert format_time(datetime(2024, 1, 15, 10, 0), HELSINKI) == "2024-01-15 12:00 +02:00"
    assert format_time(value, ZoneInfo("Asia/Kathmandu")) == "2024-07-01 14:45 +05:45"
    assert format_time(None, HELSINKI) == "-"


# ---- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (0.4, "0s"),
        (1, "1s"),
        (59, "59s"),
        (59.6, "1m"),
        (60, "1m"),
        (61, "1m"),
        (3599, "59m"),
        (3600, "1h 0m"),
        (5400, "1h 30m"),
        (86399, "23h 59m"),
        (86400, "1d 0h"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
        (400 * 86400, "400d 0h"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, -0.4, -3600, -86400 * 3])
def test_format_duration_refuses_negative_durations(seconds: float) -> None:
    with pytest.raises(ValueError, match="negative duration"):
        format_duration(seconds)


@given(st.floats(max_value=-1e-9, min_value=-1e12, allow_nan=False))
def test_no_negative_duration_is_ever_formatted(seconds: float) -> None:
    with pytest.raises(ValueError, match="out of order"):
        format_duration(seconds)


@given(st.integers(min_value=0, max_value=100 * 365 * 86400))
def test_formatted_durations_are_a_truthful_lower_bound(seconds: int) -> None:
    text = format_duration(seconds)
    assert DURATION.match(text), text
    shown = sum(int(n) * UNIT[u] for n, u in re.findall(r"(\d+)([dhms])", text))
    assert shown <= seconds < shown + UNIT[text[-1]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("36h", timedelta(hours=36)),
        ("4d", timedelta(days=4)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 4D ", timedelta(days=4)),
        ("0d", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "d", "4", "-4d", "4x", "4 d", "1e3h", "nan", "4dd", "1.2.3h", "²d", "four days"]
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_parse_duration_refuses_durations_too_long_to_represent() -> None:
    with pytest.raises(ValueError, match="too long a duration"):
        parse_duration("1000000000d")


# ---- zones -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UTC", "Europe/Helsinki", "America/New_York"])
def test_zone_accepts_iana_names(name: str) -> None:
    assert zone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    ["Mars/Olympus_Mons", "", "utc ", "../../etc/passwd", "/etc/localtime", "Europe", "Europe/"],
)
def test_zone_refuses_anything_else_with_a_validation_error(name: str) -> None:
    with pytest.raises(ValidationFailed, match="unknown time zone") as info:
        zone(name)
    [detail] = info.value.details
    assert (detail.field, detail.value) == ("tz", name)
    assert detail.accepted is not None
    assert "Europe/Helsinki" in detail.accepted
    assert info.value.exit_code == 2
