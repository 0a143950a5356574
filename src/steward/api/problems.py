"""Every error the API answers is an RFC 9457 problem document — the same object the CLI
prints with ``--json`` (``StewardError.as_problem``), whatever raised it: a service, the
request's validation, routing, or a bug (a 500 that says nothing of the internals)."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match

from steward.errors import (
    Conflict,
    Detail,
    Forbidden,
    NotFound,
    StewardError,
    TooManyAttempts,
    Unauthenticated,
    ValidationFailed,
)
from steward.redact import redact_tree

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


class ProblemDetail(BaseModel):
    """One problem, located: the field (or line) at fault, what was given, what is accepted."""

    message: str
    field: str | None = None
    row: int | None = None
    value: str | None = None
    accepted: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem document: what every error of the API is."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    errors: list[ProblemDetail]


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of an endpoint, for its description (``problem+json``)."""
    words = {
        401: "No valid token.",
        403: "You may see it but may not do this (or the token is read-only).",
        404: "It does not exist, or you may not see it.",
        405: "Method not allowed.",
        406: "None of the media types in Accept can be answered; the accepted ones are named.",
        409: "Not allowed in its current state, or it changed since the version you sent.",
        413: "The body is over 1 MiB.",
        415: "The body is not JSON.",
        422: "The input is not valid; every problem is listed.",
        429: "Too many failed sign-ins: wait the seconds in Retry-After.",
        502: "A service Steward relies on (the sign-in provider, the storage) failed.",
        503: "The database is busy or unreachable; try again.",
    }
    return {code: {"model": Problem, "description": words[code]} for code in statuses}


def as_problem_media(spec: dict[str, Any]) -> dict[str, Any]:
    """Error answers are ``application/problem+json`` in the description, as on the wire."""
    for path in spec.get("paths", {}).values():
        for operation in path.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if str(status)[0] in "45" and "application/json" in content:
                    content[MEDIA_TYPE] = content.pop("application/json")
    return spec


class MethodNotAllowed(StewardError):
    code = "method-not-allowed"
    title = "Method not allowed"
    http_status = 405


class NotAcceptable(StewardError):
    code = "not-acceptable"
    title = "Not acceptable"
    http_status = 406


class TooLarge(StewardError):
    code = "too-large"
    title = "Request body too large"
    http_status = 413


class UnsupportedMediaType(StewardError):
    code = "unsupported-media-type"
    title = "Unsupported media type"
    http_status = 415


_BY_STATUS: dict[int, type[StewardError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: Conflict,
    413: TooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
}


def problem(
    exc: StewardError,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
    status: int | None = None,
) -> JSONResponse:
    """``exc`` as a problem document; ``status`` when the status sent is not the class's own
    (a routing refusal such as 405 that no Steward error stands for exactly)."""
    body = redact_tree(exc.as_problem())
    status = status or exc.http_status
    body["status"] = status
    if request is not None and request.url.path.startswith("/ga4gh/"):
        # GA4GH APIs name their error fields msg and status_code: both, in one object.
        body["msg"], body["status_code"] = body["detail"], body["status"]
    extra = dict(headers or {})
    if isinstance(exc, Unauthenticated):
        extra.setdefault("WWW-Authenticate", 'Bearer realm="steward"')
    if isinstance(exc, TooManyAttempts):
        extra.setdefault("Retry-After", str(exc.retry_after))
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=extra)


_SECRET_FIELD = re.compile(r"(?i)passw|secret|token")


def _location(loc: tuple[Any, ...]) -> str:
    # ("body", "reason") → "reason"; ("query", "limit") → "limit"; ("header", "if-match") → …
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts)


def _methods_of(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        matched, _ = route.matches(request.scope)
        if matched in (Match.FULL, Match.PARTIAL):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    async def steward_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StewardError)
        return problem(exc, request=request)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = []
        for e in exc.errors():
            given = e.get("input")
            if _SECRET_FIELD.search(_location(tuple(e.get("loc", ())))):
                given = None  # a password or secret is never echoed, not even to its sender
            details.append(
                Detail(
                    str(e.get("msg", "invalid")),
                    field=_location(tuple(e.get("loc", ()))) or None,
                    value=None
                    if isinstance(given, dict | list) or given is None
                    else str(given)[:200],
                )
            )
        return problem(ValidationFailed("the request is not valid", details), request=request)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:  # a body that is not even text: as for broken JSON
            return problem(
                ValidationFailed(
                    "the body is not valid JSON",
                    [Detail("not JSON", field="body", accepted="a JSON object in UTF-8")],
                ),
                request=request,
            )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_methods_of(request))
        cls = _BY_STATUS.get(exc.status_code, StewardError)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            detail = f"no such path: {request.url.path}"
        return problem(cls(detail), headers=headers, request=request, status=exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(
            StewardError("something went wrong on the server; it has been logged"),
            request=request,
        )

    app.add_exception_handler(StewardError, steward_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
