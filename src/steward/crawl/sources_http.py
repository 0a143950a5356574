"""Listing an HTTP endpoint that answers JSON pages of dataset records.

Each page is a JSON list of records, or an object holding the list at ``items_field`` (default
``items``). Each record is a dataset: its accession at ``field`` (a dotted path, default
``accession``), the whole record kept as ``FoundDataset.record``, its digest the record's
canonical JSON. Pages follow one another by:

- ``link``: the next page's URL at ``next_field`` in the body, or in the ``Link: <…>;
  rel="next"`` header when no field is configured (relative URLs resolve against the page);
- ``cursor``: the next cursor at ``cursor_field``, sent back as the ``cursor_param`` query
  parameter of the source URL; an absent or empty cursor ends the listing.

Every request is retried on its own (5xx, 429, timeouts, dropped connections) with jittered
backoff, up to the source's ``retries`` attempts; a page that still fails ends the listing:
the source is ``failed``, the datasets seen on earlier pages are reported, the rest of the
previous state is ``unknown``. Each page's ETag is kept in the state and sent back
(``If-None-Match``): a page answered ``304 Not Modified`` yields its datasets unchanged without
reading them again. The token (``token_env``) is sent only to the endpoint's own origin: a next
link that points elsewhere is refused, and httpx drops ``Authorization`` on redirects that leave
the origin.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import tenacity

from steward.crawl import retry
from steward.crawl.accessions import value_at
from steward.crawl.config_model import SourceConfig
from steward.crawl.credentials import bearer_token
from steward.crawl.inline_secrets import mask
from steward.crawl.model import FoundDataset, FoundFile, ProblemKind
from steward.crawl.tracking import Listing, Tracker, record_digest
from steward.errors import NotFound

MAX_PAGES = 100_000
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _PageFailed(Exception):
    """A page that could not be read; the message is for people (no credentials in it)."""


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class EndpointSource:
    """A JSON endpoint as a source of datasets."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        environ: Mapping[str, str] | None = None,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._environ = environ
        self._wait = retry.backoff(backoff)
        self._sleep = sleep

    def list(self, previous: Mapping[str, Any] | None = None) -> Listing:
        tracker = Tracker(self.config, previous)
        return Listing(tracker, self._walk(tracker))

    def read(self, dataset: FoundDataset, file: FoundFile, *, limit: int | None = None) -> bytes:
        raise NotFound(f"{dataset.location} is a record of an endpoint: it has no files")

    # -- one page ---------------------------------------------------------------------------
    def _get(self, client: httpx.Client, t: Tracker, url: str, etag: str | None) -> httpx.Response:
        headers = {"If-None-Match": etag} if etag else {}

        def attempt() -> httpx.Response:
            response = client.get(url, headers=headers)
            if response.status_code in RETRY_STATUSES:
                raise _Retryable(response)
            return response

        def count(_: tenacity.RetryCallState) -> None:
            t.retries += 1

        attempts = self.config.retries
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((_Retryable, httpx.TransportError)),
            sleep=self._sleep,
            before_sleep=count,
            reraise=True,
        )
        times = f"{attempts} time{'s' if attempts != 1 else ''}"
        try:
            response = retrying(attempt)
        except _Retryable as exc:
            status = exc.response.status_code
            raise _PageFailed(
                f"answered {status} {exc.response.reason_phrase}, {times}".rstrip()
            ) from None
        except httpx.TimeoutException:
            raise _PageFailed(f"no answer within {self.config.timeout:g} s, {times}") from None
        except httpx.TransportError as exc:
            raise _PageFailed(f"could not be reached ({type(exc).__name__}), {times}") from None
        if response.status_code in (401, 403):
            raise _PageFailed(
                f"refused Steward ({response.status_code}): check the token in "
                f"{self.config.token_env or 'token_env'}"
            )
        if response.status_code >= 400:
            raise _PageFailed(f"answered {response.status_code} {response.reason_phrase}")
        return response

    def _next(self, url: str, response: httpx.Response, body: Any) -> str | None:
        paging = self.config.pagination
        if paging.style == "link":
            if paging.next_field:
                link = value_at(body, paging.next_field)
            else:
                link = response.links.get("next", {}).get("url")
            if not isinstance(link, str) or not link:
                return None
            return str(httpx.URL(url).join(link))
        if paging.style == "cursor":
            cursor = value_at(body, paging.cursor_field or "")
            if cursor is None or cursor == "" or cursor is False:
                return None
            base = httpx.URL(self.config.url)
            return str(base.copy_set_param(paging.cursor_param, str(cursor)))
        return None

    def _items(self, body: Any) -> builtins.list[Any] | None:
        if self.config.items_field:
            found = value_at(body, self.config.items_field)
        elif isinstance(body, list):
            found = body
        else:
            found = value_at(body, "items")
        return found if isinstance(found, list) else None

    # -- the walk ---------------------------------------------------------------------------
    def _walk(self, t: Tracker) -> Iterator[FoundDataset]:
        token = bearer_token(self.config, self._environ)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        home = _origin(httpx.URL(self.config.url))
        old_pages = t.previous_extra.get("pages")
        old_pages = old_pages if isinstance(old_pages, Mapping) else {}
        pages: dict[str, Any] = {}
        t.extra["pages"] = pages
        unmatched: builtins.list[str] = []
        timeout = httpx.Timeout(self.config.timeout)
        with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as client:
            url: str | None = self.config.url
            while url is not None:
                shown = mask(url)
                if url in pages or len(pages) >= MAX_PAGES:
                    why = (
                        "the pages lead back to one already read"
                        if url in pages
                        else f"more than {MAX_PAGES} pages; the rest is not listed"
                    )
                    t.fail(shown, why, kind=ProblemKind.BAD_PAGE)
                    return
                if _origin(httpx.URL(url)) != home:
                    t.fail(
                        shown,
                        "the next page is on another host; not followed (the token is only "
                        "for the endpoint's own host)",
                        kind=ProblemKind.BAD_PAGE,
                    )
                    return
                old = old_pages.get(url)
                old = old if isinstance(old, Mapping) else None
                try:
                    response = self._get(client, t, url, old.get("etag") if old else None)
                except _PageFailed as exc:
                    t.fail(shown, str(exc), kind=ProblemKind.PAGE_FAILED)
                    return
                if response.status_code == 304 and old is not None:
                    pages[url] = dict(old)
                    for key in old.get("keys", ()):
                        if t.previous(key) is not None and not t.seen(key):
                            yield t.carry(key, base="")
                    url = old.get("next")
                    continue
                try:
                    body = response.json()
                except ValueError:
                    t.fail(shown, "the answer is not JSON", kind=ProblemKind.BAD_PAGE)
                    return
                items = self._items(body)
                if items is None:
                    where = self.config.items_field or "the body or its 'items'"
                    t.fail(shown, f"no list of records at {where}", kind=ProblemKind.BAD_PAGE)
                    return
                keys: builtins.list[str] = []
                for index, record in enumerate(items):
                    found = self._record(t, shown, index, record, unmatched)
                    if found is not None:
                        keys.append(found.key)
                        yield found
                try:
                    next_url = self._next(url, response, body)
                except (httpx.InvalidURL, ValueError):
                    t.fail(shown, "the next page's link is not a URL", kind=ProblemKind.BAD_PAGE)
                    return
                pages[url] = {"etag": response.headers.get("etag"), "next": next_url, "keys": keys}
                url = next_url
        if unmatched:
            t.problem(
                ProblemKind.BAD_RECORD,
                mask(self.config.url),
                f"{len(unmatched)} record(s) have no accession matching the pattern "
                f"(first: {unmatched[0]}); they are not datasets of this source",
                hides_data=False,
            )

    def _record(
        self, t: Tracker, page: str, index: int, record: Any, unmatched: builtins.list[str]
    ) -> FoundDataset | None:
        where = f"{page} record {index + 1}"
        field = self.config.accession.field or "accession"
        if not isinstance(record, Mapping):
            t.problem(ProblemKind.BAD_RECORD, where, "not a JSON object", hides_data=True)
            t.hide("")
            return None
        raw = value_at(record, field)
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            t.problem(ProblemKind.BAD_RECORD, where, f"no accession at {field!r}", hides_data=True)
            t.hide("")
            return None
        accession = self.config.accession.accession_in_record(record)
        if accession is None:
            unmatched.append(f"{where}: {str(raw)[:80]!r}")
            return None
        key, n = accession, 1
        while t.seen(key):
            n += 1
            key = f"{accession}#{n}"
        if n > 1:
            t.problem(
                ProblemKind.DUPLICATE_RECORD,
                where,
                f"{accession} appears more than once in the endpoint",
                hides_data=False,
            )
        return t.found(
            accession=accession,
            key=key,
            base="",
            location=f"{mask(self.config.url)}#{accession}",
            files=(),
            digest=record_digest(record),
            record=dict(record),
        )
