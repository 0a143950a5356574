"""Which format to answer in: ``?format=`` when given, else the most preferred media type of
``Accept`` (its ``q`` values, then its order) among those offered — one reading of ``Accept``
for every endpoint that answers more than JSON (reports, a package's report, the datasets
overview); and how a self-contained page is answered."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import HTMLResponse

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


PAGE_MEDIA = {"html": "text/html", "json": "application/json"}
_PAGE_WILDCARDS = {"*/*": "html", "text/*": "html", "application/*": "json"}
PAGE_SANDBOX = "sandbox allow-scripts; frame-ancestors 'none'"
"""A page Steward renders (a package's report, the datasets overview) runs its own
(hash-pinned) scripts in an opaque origin: never as this API's page, with its cookies. The
page's own policy forbids every request."""


def page_or_json(given: str | None, accept: str | None, *, refusal: str) -> str:
    """``html`` (the page, also for ``*/*`` and no ``Accept``) or ``json`` (its data)."""
    return negotiate(
        given, accept, media=PAGE_MEDIA, wildcards=_PAGE_WILDCARDS, default="html",
        refusal=refusal,
    )  # fmt: skip


def page(html: str | bytes, filename: str) -> HTMLResponse:
    """A self-contained page, sandboxed (:data:`PAGE_SANDBOX`), shown in the browser."""
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": PAGE_SANDBOX,
            "Content-Disposition": f'inline; filename="{filename}"',
            "Vary": "Accept",
        },
    )
