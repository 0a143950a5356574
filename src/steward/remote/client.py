"""HTTP to a Steward server, and its problem documents back into Steward's own errors.

A refusal from the server becomes the very exception the service would have raised locally
(found by the problem's ``code``), so the CLI prints it, exits with its code and emits the same
``--json`` problem either way.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from steward.errors import ConfigurationError, Detail, StewardError, Unavailable

if TYPE_CHECKING:
    import httpx  # imported when a client is made: most commands never talk to a server


def _timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(30.0, connect=10.0)


def _error_classes() -> dict[str, type[StewardError]]:
    found: dict[str, type[StewardError]] = {}
    todo: list[type[StewardError]] = [StewardError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def error_from(problem: dict[str, Any], status: int) -> StewardError:
    """The exception a problem document stands for (a plain one of its status if unknown)."""
    cls = _error_classes().get(str(problem.get("code", "")))
    details = [
        Detail(
            str(e.get("message", "")),
            field=e.get("field"),
            row=e.get("row"),
            value=e.get("value"),
            accepted=e.get("accepted"),
        )
        for e in problem.get("errors") or []
        if isinstance(e, dict)
    ]
    message = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    if cls is None:
        cls = next((c for c in _error_classes().values() if c.http_status == status), StewardError)
    return cls(message, details)


def check_server_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"not a server address: {url!r}",
            [Detail("not an http(s) URL", field="server", value=url,
                    accepted="https://steward.example.org")],
        )  # fmt: skip
    return url.rstrip("/")


class Client:
    """One server, one token; every call sends it as a bearer token."""

    def __init__(self, server: str, token: str) -> None:
        import httpx

        self.server = check_server_url(server)
        self._http = httpx.Client(
            base_url=self.server,
            headers={"Accept": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
            timeout=_timeout(),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The answer's JSON, or the error its problem document stands for."""
        return self.fetch(method, path, params=params, body=body, headers=headers).json()

    def fetch(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The successful answer as it came (a file, say), or the error it stands for."""
        return self.send(method, path, params=params, json=body, headers=headers)

    def send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: list[tuple[str, tuple[str, IO[bytes], str]]] | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """:meth:`fetch` with a form (``data``, and ``files`` as multipart/form-data) or a
        timeout of its own (a check that reads every byte of a package)."""
        import httpx

        try:
            answer = self._http.request(
                method, path, params=tuple(params or ()), json=json, data=data, files=files,
                headers=headers or {}, timeout=timeout or _timeout(),
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the server at {self.server} does not answer: {type(exc).__name__}",
                [Detail("unreachable", field="server", value=self.server)],
            ) from None
        if answer.is_success:
            return answer
        try:
            problem = answer.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        raise error_from(problem, answer.status_code)

    def pages(self, path: str, params: list[tuple[str, str]], limit: int | None) -> list[Any]:
        """Every item of a paged list (up to ``limit``), following its ``next`` links."""
        items: list[Any] = []
        page = self.call("GET", path, params=params)
        while True:
            items.extend(page["items"])
            if page.get("next") is None or (limit is not None and len(items) >= limit):
                return items if limit is None else items[:limit]
            nxt = urlsplit(page["next"])
            page = self.call("GET", nxt.path + ("?" + nxt.query if nxt.query else ""))
