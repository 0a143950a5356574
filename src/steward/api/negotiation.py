"""Which format to answer in: ``?format=`` when given, else the most preferred media type of
``Accept`` (its ``q`` values, then its order) among those offered — one reading of ``Accept``
for every endpoint that answers more than JSON (reports, a package's report)."""

from __future__ import annotations

from collections.abc import Mapping

from steward.api.problems import NotAcceptable
from steward.errors import Detail


def negotiate(
    given: str | None,
    accept: str | None,
    *,
    media: Mapping[str, str],
    wildcards: Mapping[str, str],
    default: str,
    refusal: str,
) -> str:
    """``media``: each format's media type; ``wildcards``: what ``*/*``, ``text/*``… mean;
    ``default``: the answer to no or an empty ``Accept``; ``refusal``: what a 406 says."""
    if given is not None:
        return given
    if not accept or not accept.strip():
        return default
    offered = {m: fmt for fmt, m in media.items()} | dict(wildcards)
    wanted: list[tuple[float, int, str]] = []
    for order, part in enumerate(accept.split(",")):
        kind, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        fmt = offered.get(kind.lower())
        if fmt is not None and 0 < quality <= 1:
            wanted.append((-quality, order, fmt))
    if not wanted:
        raise NotAcceptable(
            refusal,
            [
                Detail(
                    "no acceptable media type",
                    field="Accept",
                    value=accept[:200],
                    accepted=", ".join(media.values()),
                )
            ],
        )
    return min(wanted)[2]
