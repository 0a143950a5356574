"""Times of streamed exports moved to a zone by text, exactly as ``astimezone().isoformat()``.

The exports convert UTC text ('YYYY-MM-DDTHH:MM:SS[.ffffff]') with one conversion per hour of
the day (``reports_format.LocalTimes``); these properties pin it to what Python's datetime
gives for every zone shape: whole-hour offsets, half- and three-quarter-hour offsets, and the
hours in which a zone changes its offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from steward.services.reports_format import LocalTimes

ZONES = [
    "UTC",
    "Europe/Helsinki",  # +02/+03, daylight saving
    "America/New_York",
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "America/St_Johns",  # -03:30/-02:30, daylight saving
    "Australia/Lord_Howe",  # a half-hour daylight-saving shift
    "Pacific/Chatham",  # +12:45/+13:45
]

# times around 2024's offset changes (and anywhere in between), to the microsecond
MOMENTS = st.one_of(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1)),
    st.sampled_from(
        [
            datetime(2024, 3, 31, 0, 59, 59, 999_999),  # Europe springs forward at 01:00 UTC
            datetime(2024, 3, 31, 1, 0),
            datetime(2024, 10, 27, 0, 30),  # and falls back
            datetime(2024, 10, 27, 1, 0, 0, 1),
            datetime(2024, 11, 3, 5, 59, 59),  # New York falls back at 06:00 UTC
            datetime(2024, 11, 3, 6, 0),
            datetime(2024, 4, 6, 14, 45),  # Lord Howe and Chatham change in April
            datetime(2024, 4, 6, 15, 0),
        ]
    ).flatmap(lambda t: st.integers(-90, 90).map(lambda m: t + timedelta(minutes=m))),
)


def utc_text(when: datetime) -> str:
    """As the change log keeps a time: no fraction when there is none."""
    return when.isoformat()


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), moments=st.lists(MOMENTS, min_size=1, max_size=40))
def test_texts_in_a_zone_are_what_datetime_gives(zone: str, moments: list[datetime]) -> None:
    tz = ZoneInfo(zone)
    texts = [utc_text(m) for m in moments]
    want = [m.replace(tzinfo=UTC).astimezone(tz).isoformat() for m in moments]
    times = LocalTimes(tz)
    assert times.iso_of_utc_texts(texts) == want
    assert [times.iso_of_utc_text(t) for t in texts] == want  # one at a time, cache warm
    assert [LocalTimes(tz).iso_of_utc_text(t) for t in texts] == want  # cold


def test_a_whole_second_may_also_carry_six_zero_digits() -> None:
    times = LocalTimes(ZoneInfo("Europe/Helsinki"))
    assert times.iso_of_utc_text("2024-01-05T09:00:00.000000") == "2024-01-05T11:00:00+02:00"
