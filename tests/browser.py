"""Real Chromium for browser tests: Debian's build driven by Playwright, never a downloaded one.

Kept apart from the fixtures so any browser test (reports, the web dashboard) launches the
browser the same way: offline, headless, and failing loudly — not skipping — when Chromium is
missing, because CI installs it and a silent skip would hide a broken setup.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = Path(os.environ.get("STEWARD_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--disable-background-networking",  # no update checks, safe browsing, metrics …
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch headless Chromium; fail (not skip) with the fix when it is not installed."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(apt-get install chromium) or point STEWARD_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    args = [*ARGS, "--no-sandbox"] if os.geteuid() == 0 else ARGS  # the sandbox refuses root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=args, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class WatchedPage:
    """A page plus everything it said or fetched, so tests can demand silence and no network."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def network_requests(self) -> list[str]:
        """Every request that left the page, except in-memory data: and blob: URLs."""
        return [url for url in self.requests if not url.startswith(("data:", "blob:"))]


@contextmanager
def watched_page(browser: Browser, **context_options: Any) -> Iterator[WatchedPage]:
    """A fresh context (own downloads, storage, colour scheme) closed afterwards, so nothing
    leaks between tests and Playwright leaves no unclosed resources behind."""
    context = browser.new_context(accept_downloads=True, **context_options)
    try:
        page = context.new_page()
        watched = WatchedPage(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                watched.console_errors.append(f"{message.type}: {message.text}")

        def on_request(request: Request) -> None:
            watched.requests.append(request.url)

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
        page.on("request", on_request)
        yield watched
    finally:
        context.close()
