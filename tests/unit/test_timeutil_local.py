"""Wall-clock times in an assumed zone: refused where the zone makes them ambiguous."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.timeutil import local_time, parse_timestamp

HELSINKI = ZoneInfo("Europe/Helsinki")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "tz", "words"),
    [
        ("2025-03-30T03:30:00", HELSINKI, "did not exist in Europe/Helsinki"),
        ("2025-03-09T02:15:00", NEW_YORK, "did not exist in America/New_York"),
        ("2025-10-26T03:30:00", HELSINKI, "happened twice in Europe/Helsinki"),
        ("2025-11-02T01:30:00", NEW_YORK, "happened twice in America/New_York"),
    ],
)
def test_skipped_and_repeated_local_times_are_refused(text: str, tz: ZoneInfo, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_timestamp(text, assume=tz)


def test_the_refusals_say_which_offsets_were_possible() -> None:
    with pytest.raises(ValueError, match="did not exist") as gap:
        parse_timestamp("2025-03-30T03:30:00", assume=HELSINKI)
    assert "from +02:00 to +03:00" in str(gap.value)
    with pytest.raises(ValueError, match="happened twice") as twice:
        parse_timestamp("2025-10-26T03:30:00", assume=HELSINKI)
    assert "+03:00 and again at +02:00" in str(twice.value)
    assert "2025-10-26T03:30:00+03:00" in str(twice.value)


def test_times_just_outside_the_changes_are_kept() -> None:
    assert parse_timestamp("2025-03-30T02:59:59", assume=HELSINKI) == datetime(
        2025, 3, 30, 0, 59, 59, tzinfo=UTC
    )
    assert parse_timestamp("2025-03-30T04:00:00", assume=HELSINKI) == datetime(
        2025, 3, 30, 1, 0, tzinfo=UTC
    )
    assert parse_timestamp("2025-10-26T04:00:00", assume=HELSINKI) == datetime(
        2025, 10, 26, 2, 0, tzinfo=UTC
    )


def test_times_out_of_range_in_utc_are_a_value_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="out of the range"):
        parse_timestamp("0001-01-01T00:00:00+01:00")
    with pytest.raises(ValueError, match="out of the range"):
        parse_timestamp("9999-12-31T23:00:00-05:00")


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)))
def test_every_accepted_local_time_means_one_instant(value: datetime) -> None:
    """A time that is accepted reads back as the same wall-clock time in its zone."""
    for tz in (HELSINKI, NEW_YORK):
        try:
            aware = local_time(value, tz)
        except ValueError:
            continue
        assert aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == value
        assert aware.replace(fold=1).utcoffset() == aware.replace(fold=0).utcoffset()
