"""Values of streamed reports written exactly as ``steward.tables`` writes them, but cheaply.

``tables`` renders a time as ``value.astimezone(tz).isoformat()`` and a duration as
``round(float(value), 3)``; a million rows cannot each pay for a zone conversion, so times
given as UTC text are converted once per hour of the day they fall in (a zone's offset is the
same for a whole hour, except across a change of offset, which is detected and then handled
one value at a time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_HOUR = timedelta(hours=1)
_LAST_MICROSECOND = timedelta(hours=1, microseconds=-1)


class LocalTimes:
    """ISO 8601 times in one zone, as ``datetime.astimezone(tz).isoformat()`` gives them."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._hours: dict[str, tuple[str, str] | None] = {}

    def iso(self, when: datetime) -> str:
        return when.astimezone(self.tz).isoformat()

    def _hour(self, hour: str) -> tuple[str, str] | None:
        """The local 'YYYY-MM-DDTHH' and the offset text for a UTC hour, when they hold for
        all of it: one offset, a whole number of hours (so minutes and seconds carry over)."""
        start = datetime.fromisoformat(f"{hour}:00:00+00:00")
        first = start.astimezone(self.tz)
        offset = first.utcoffset()
        if offset is None or offset % _HOUR:
            return None
        if (start + _LAST_MICROSECOND).astimezone(self.tz).utcoffset() != offset:
            return None
        text = first.isoformat()  # 'YYYY-MM-DDTHH:00:00+HH:MM'
        return text[:13], text[19:]

    def iso_of_utc_texts(self, texts: list[str]) -> list[str]:
        """``iso_of_utc_text`` of many times at once (none ending in '.000000'): one lookup
        per time, no function call, the hours missing from the cache computed once each."""
        cache = self._hours
        hours = [t[:13] for t in texts]
        for hour in set(hours).difference(cache):
            cache[hour] = self._hour(hour)
        one = self.iso_of_utc_text
        return [
            one(t) if found is None else found[0] + t[13:] + found[1]
            for found, t in zip(map(cache.__getitem__, hours), texts, strict=True)
        ]

    def iso_of_utc_text(self, text: str) -> str:
        """A UTC time written 'YYYY-MM-DDTHH:MM:SS[.ffffff]' (as the database renders it)."""
        if text.endswith(".000000"):
            text = text[:-7]
        hour = text[:13]
        try:
            found = self._hours[hour]
        except KeyError:
            found = self._hours[hour] = self._hour(hour)
        if found is None:
            return datetime.fromisoformat(text).replace(tzinfo=UTC).astimezone(self.tz).isoformat()
        return found[0] + text[13:] + found[1]
