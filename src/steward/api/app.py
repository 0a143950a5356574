"""``create_app(settings)``: the FastAPI application ``steward serve`` runs.

Nothing is built at import time: the database, the routes of every registered kind and the
embedded worker are made here, from the settings given.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.exceptions import HTTPException

from steward import __version__
from steward.api import accounts as accounts_api
from steward.api import audit as audit_api
from steward.api import catalog as catalog_api
from steward.api import crawls as crawls_api
from steward.api import dataset_tracker as dataset_tracker_api
from steward.api import drs as drs_api
from steward.api import jobs as jobs_api
from steward.api import oidc as oidc_api
from steward.api import packages as packages_api
from steward.api import problems
from steward.api import projects as projects_api
from steward.api import reference as reference_api
from steward.api import reports as reports_api
from steward.api import requests as requests_api
from steward.api import shares as shares_api
from steward.api import sites as sites_api
from steward.api import tokens as tokens_api
from steward.api import users as users_api
from steward.api import visas as visas_api
from steward.api.subjects import router_for
from steward.config import Settings, load_settings
from steward.db.session import Database
from steward.errors import Detail, StewardError, Unavailable, ValidationFailed
from steward.services.kinds import kinds

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
"""Largest request body accepted (1 MiB): commands are small; uploads get their own limit."""
PREFIX = "/api/v1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Health(BaseModel):
    status: str
    version: str


UPLOAD_PATHS = frozenset({PREFIX + "/packages"})
"""The one route that takes uploads (multipart/form-data, up to ``api_upload_mib``): a
package's manifests. Every other body is JSON of at most ``MAX_BODY``."""
SPOOL_IN_MEMORY = 1 << 20
"""An upload is held in memory up to this size, then in a temporary file."""


class Guard:
    """ASGI middleware: refuses bodies over ``MAX_BODY`` (413, counted as they stream, so a
    missing or false Content-Length does not get past) and bodies that are not JSON (415),
    before any endpoint reads them; adds the security headers to every answer.

    ``POST`` to an :data:`UPLOAD_PATHS` route is the one exception: it must be
    ``multipart/form-data`` (415 otherwise) of at most ``upload_limit`` bytes, counted the
    same way and spooled (to a temporary file past 1 MiB) before the endpoint sees it."""

    def __init__(self, app: ASGIApp, upload_limit: int = 64 << 20) -> None:
        self.app = app
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        refusal: StewardError | None = None
        path, query = scope.get("raw_path", b""), scope.get("query_string", b"")
        if b"%00" in path or b"\x00" in path:
            refusal = _nul("the path", "path")
        elif b"%00" in query or b"\x00" in query:
            refusal = _nul("the query", "query")
        elif scope["method"] == "POST" and scope.get("path") in UPLOAD_PATHS:
            await self._upload(scope, receive, send, headers)
            return
        elif length.isdigit() and int(length) > MAX_BODY:
            refusal = problems.TooLarge(
                f"the body is {int(length):,} bytes; at most {MAX_BODY:,} are accepted",
                [Detail("too large", field="body", value=length, accepted=f"<= {MAX_BODY}")],
            )
        if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # Read the (small) body first, counting what arrives: a missing or false
            # Content-Length does not get a larger body past, and the endpoint never sees it.
            chunks, seen, more = [], 0, True
            while more and seen <= MAX_BODY:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if seen > MAX_BODY:
                refusal = problems.TooLarge(
                    f"the body is over {MAX_BODY:,} bytes",
                    [Detail("too large", field="body", accepted=f"<= {MAX_BODY}")],
                )
            elif body and not _is_json(headers.get("content-type", "")):
                refusal = _not_json(headers.get("content-type", ""))
            elif _JSON_NUL.search(body):
                refusal = _nul("the body", "body")
            else:
                receive = _replay(body, receive)
        if refusal is not None:
            answer = problems.problem(refusal, request=Request(scope))
            await answer(scope, receive, _secured(send))
            return
        await self.app(scope, receive, _secured(send))

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        limit, length = self.upload_limit, headers.get("content-length", "")
        kind = headers.get("content-type", "").split(";", maxsplit=1)[0].strip().lower()
        refusal: StewardError | None = None
        if kind != "multipart/form-data":
            refusal = problems.UnsupportedMediaType(
                f"this endpoint takes multipart/form-data (the manifest as a file), not "
                f"{kind or 'an unnamed type'}",
                [Detail("not multipart/form-data", field="Content-Type", value=kind,
                        accepted="multipart/form-data")],
            )  # fmt: skip
        elif length.isdigit() and int(length) > limit:
            refusal = _upload_too_large(limit, int(length))
        if refusal is not None:
            await problems.problem(refusal, request=Request(scope))(scope, receive, _secured(send))
            return
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            seen, more = 0, True
            while more and seen <= limit:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen <= limit:
                    spool.write(chunk)
                more = message.get("more_body", False)
            if seen > limit:
                answer = problems.problem(_upload_too_large(limit, None), request=Request(scope))
                await answer(scope, receive, _secured(send))
                return
            spool.seek(0)
            await self.app(scope, _replay_spool(spool, receive), _secured(send))
        finally:
            spool.close()


def _upload_too_large(limit: int, given: int | None) -> StewardError:
    size = f"{given:,} bytes" if given is not None else f"over {limit:,} bytes"
    return problems.TooLarge(
        f"the upload is {size}; at most {limit:,} bytes ({limit >> 20} MiB, the server's "
        "STEWARD_API_UPLOAD_MIB) are accepted",
        [Detail("too large", field="body", value=None if given is None else str(given),
                accepted=f"<= {limit} bytes (STEWARD_API_UPLOAD_MIB)")],
    )  # fmt: skip


def _replay_spool(spool: IO[bytes], receive: Receive) -> Receive:
    """The spooled body in blocks, then whatever the connection says next (a disconnect)."""
    done = False

    async def replayed() -> Message:
        nonlocal done
        if not done:
            block = spool.read(1 << 16)
            done = len(block) < 1 << 16
            return {"type": "http.request", "body": block, "more_body": not done}
        return await receive()

    return replayed


_JSON_NUL = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u0000")
"""``\u0000`` in JSON text, not preceded by an escaping backslash."""


def _nul(where: str, field: str) -> StewardError:
    """NUL characters are refused everywhere, so SQLite (which stores them) and PostgreSQL
    (which cannot) answer the same."""
    return ValidationFailed(
        f"{where} contains a NUL character (\\u0000 or %00)",
        [Detail("NUL character", field=field, accepted="text without NUL characters")],
    )


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _not_json(content_type: str) -> StewardError:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    return problems.UnsupportedMediaType(
        f"the body must be JSON, not {kind or 'unnamed'}",
        [Detail("not JSON", field="Content-Type", value=kind, accepted="application/json")],
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever the connection says next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


def _secured(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = [
                *message.get("headers", []),
                *((k, v) for k, v in _SECURITY_HEADERS if k not in names),
            ]
        await send(message)

    return wrapped


def _swagger_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(
    settings: Settings | None = None, *, worker: bool = False, listening: str | None = None
) -> FastAPI:
    """The API over ``settings``' database; ``worker`` also runs the queue in this process
    (``steward serve`` does, unless told not to). ``listening`` (``http://host:port``) is this
    server's address when ``public_url`` is not set: the issuer of visas and the host of
    ``drs://`` URIs come from configuration, never from a request's ``Host`` header."""
    settings = settings or load_settings()
    # One connection per request thread, the embedded worker's and the readiness probe's.
    db = Database(settings, pool_size=settings.serve_threads + 2)
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.serve_threads
        db.ensure_schema()
        thread = _start_worker(db, settings, stop) if worker else None
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=60)
            db.dispose()

    app = FastAPI(
        title="Steward",
        version=__version__,
        description="The data coordination centre's API: every tracked kind, its lists, "
        "details, timelines and commands. Errors are RFC 9457 problem documents.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.public_url = settings.public_url or listening
    problems.install(app)
    app.add_middleware(Guard, upload_limit=settings.api_upload_mib << 20)
    # the tracker's own dataset paths first: /api/v1/datasets/duplicates is not a dataset's id
    app.include_router(dataset_tracker_api.router)
    for kind in kinds():
        app.include_router(router_for(kind), prefix=PREFIX)
    app.include_router(requests_api.router)
    app.include_router(packages_api.router)
    app.include_router(shares_api.router)
    app.include_router(oidc_api.router)
    app.include_router(drs_api.router)
    app.include_router(visas_api.router)
    app.include_router(projects_api.router)
    app.include_router(users_api.router)
    app.include_router(catalog_api.router)
    app.include_router(reference_api.router)
    app.include_router(reports_api.router)
    app.include_router(jobs_api.router)
    app.include_router(accounts_api.router)
    app.include_router(sites_api.router)
    app.include_router(audit_api.router)
    app.include_router(tokens_api.router)
    app.include_router(crawls_api.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            spec.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "stw_… token"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "steward_session",
                    "description": "from POST /api/v1/session; calls that change something "
                    "also send its csrf_token as X-CSRF-Token",
                },
            }
            for path, operations in spec["paths"].items():
                if path.startswith((PREFIX, drs_api.PREFIX + "/objects")):
                    for method, operation in operations.items():
                        # OPTIONS says how to authorise, so it is anonymous (DRS 1.5).
                        # Signing in is anonymous (it says so itself).
                        operation.setdefault(
                            "security",
                            [] if method == "options" else [{"bearer": []}, {"session": []}],
                        )
            app.openapi_schema = problems.as_problem_media(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is up (for load balancers: restart it if not)."""
        return Health(status="ok", version=__version__)

    unready = problems.documented(503)

    @app.get("/readyz", response_model=Health, tags=["health"], responses=unready)
    def readyz() -> Health | JSONResponse:
        """The database (and the queue, when it is Redis) answer: send it traffic."""
        try:
            with db.read() as s:
                s.execute(text("SELECT 1"))
            if settings.queue_url:
                import redis

                redis.Redis.from_url(settings.queue_url, socket_timeout=2).ping()
        except Exception as exc:
            log.warning("not ready: %s", type(exc).__name__)
            return problems.problem(
                Unavailable("not ready: the database or the queue does not answer")
            )
        return Health(status="ready", version=__version__)

    swagger = _swagger_dir()
    static = resources.files("steward.api") / "static"

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse((static / "docs.html").read_text(encoding="utf-8"))

    @app.get("/api/docs/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        allowed = {
            "swagger-ui.css": swagger / "swagger-ui.css",
            "swagger-ui-bundle.js": swagger / "swagger-ui-bundle.js",
            "start.js": Path(str(static / "start.js")),
        }
        if name not in allowed:
            raise HTTPException(404)
        return FileResponse(allowed[name])

    return app


def _start_worker(db: Database, settings: Settings, stop: threading.Event) -> threading.Thread:
    from steward.jobs.worker import Worker

    w = Worker(db, settings, concurrency=2)

    def run() -> None:
        try:
            w.run()
        except Exception as exc:
            log.error("the embedded worker stopped: %s", type(exc).__name__)

    def watch() -> None:
        stop.wait()
        w.shut_down()

    threading.Thread(target=watch, name="worker-stop", daemon=True).start()
    thread = threading.Thread(target=run, name="worker", daemon=True)
    thread.start()
    return thread


def factory() -> FastAPI:
    """For ``uvicorn --factory`` with several worker processes: settings from the
    environment, the embedded worker only when ``STEWARD_SERVE_WORKER`` says so."""
    import os

    return create_app(
        worker=os.environ.get("STEWARD_SERVE_WORKER") == "1",
        listening=os.environ.get("STEWARD_SERVE_LISTENING"),
    )
