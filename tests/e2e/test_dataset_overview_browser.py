"""The datasets overview in real Chromium: the chart, the filters, a dataset's history,
untrusted values as text, and not one network request.

The page is made from a real crawl into SQLite on two days: E-GEOD-5 external (GSE5, a
secondary accession of E-MTAB-1: a duplicate), E-MTAB-1 incoming then loading, E-MTAB-2
incoming, and a dataset whose folder — hence accession — and title are markup.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from steward.crawl.config import parse_crawl_config
from steward.services import crawl, dataset_overview, ledger
from steward.services.datasets import DATASET
from tests.browser import WatchedPage, watched_page
from tests.conftest import Consortium
from tests.crawl_trees import dataset_files, write_tree
from tests.integration.test_dataset_overview import Clock

EVIL = "E-<img src=x onerror=window.__xss=1>"
EVIL_TITLE = "</script><script>window.__xss=2</script><b>bold</b>"
DAY1 = datetime(2025, 3, 1, 10, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 10, tzinfo=UTC)
NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the page is the same whichever database it came from


@pytest.fixture
def page_file(consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clock = Clock(DAY1)
    monkeypatch.setattr(crawl, "utcnow", clock)
    monkeypatch.setattr(ledger, "utcnow", clock)
    root = tmp_path / "storage"
    write_tree(root / "external", {"E-GEOD-5/E-GEOD-5.txt": "from GEO"})
    write_tree(root / "incoming", dataset_files("E-MTAB-1", "Liver", secondary=("GSE5",)))
    write_tree(root / "incoming", dataset_files("E-MTAB-2", "Brain", "Mus musculus"))
    write_tree(root / "incoming", dataset_files(EVIL, EVIL_TITLE))
    (root / "loading").mkdir()
    config = parse_crawl_config(
        {
            "sources": [
                {
                    "name": stage,
                    "project": "p1",
                    "url": str(root / stage),
                    "stage": stage,
                    "pattern": "^E-.+$",
                    "extractors": ["mage-tab-idf", "mage-tab-sdrf"],
                    "tech": [] if stage == "external" else ["rna-seq"],
                }
                for stage in ("external", "incoming", "loading")
            ]
        }
    )
    crawl.run_crawl(consortium.db, consortium.db.settings, actor=consortium.steward, config=config)
    clock.now = DAY2
    shutil.copytree(root / "incoming" / "E-MTAB-1", root / "loading" / "E-MTAB-1")
    crawl.run_crawl(consortium.db, consortium.db.settings, actor=consortium.steward, config=config)
    data = dataset_overview.overview(
        consortium.db,
        actor=consortium.viewer,
        flt=DATASET.filter(),
        tz=ZoneInfo("UTC"),
        now=NOW,
    )
    assert {d["accession"] for d in data.datasets} == {"E-GEOD-5", "E-MTAB-1", "E-MTAB-2", EVIL}
    path = tmp_path / "overview.html"
    dataset_overview.write_overview(data, path)
    return path


@pytest.fixture
def opened(browser: Browser, page_file: Path) -> Iterator[WatchedPage]:
    with watched_page(browser, viewport={"width": 1280, "height": 900}) as watched:
        watched.page.goto(page_file.as_uri())
        expect(watched.page.locator("#track tbody tr").first).to_be_visible()
        yield watched
        assert watched.network_requests() == [page_file.as_uri()]
        assert (watched.console_errors, watched.page_errors) == ([], [])


def rows(page: Page, view: str) -> Locator:
    return page.locator(f"#{view} tbody tr[data-ref]")


def column(page: Page, view: str, n: int) -> list[str]:
    return page.locator(f"#{view} tbody tr[data-ref] td:nth-child({n})").all_inner_texts()


def test_the_chart_draws_one_series_per_state_in_stage_order(opened: WatchedPage) -> None:
    page = opened.page
    series = page.locator("svg.chart g.series")
    expect(series).to_have_count(3)
    assert series.evaluate_all("els => els.map(e => e.dataset.state)") == [
        "external",
        "incoming",
        "loading",
    ]
    # one bar per day each state held a dataset: external 3 days, incoming 3, loading 2
    assert [series.nth(i).locator("rect").count() for i in range(3)] == [1 * 3, 3, 2]
    titles = page.locator("svg.chart g.series[data-state=incoming] rect title")
    assert titles.all_text_contents() == [
        "2025-03-01: 3 incoming",
        "2025-03-02: 2 incoming",
        "2025-03-03: 2 incoming",
    ]
    assert page.locator(".legend li").all_inner_texts() == ["external", "incoming", "loading"]
    assert page.locator("#state-counts li").all_inner_texts() == [
        "external 1",
        "incoming 2",
        "loading 1",
    ]


def test_filters_narrow_the_tables_and_sorting_orders_them(opened: WatchedPage) -> None:
    page = opened.page
    expect(rows(page, "track")).to_have_count(3)
    expect(rows(page, "discover")).to_have_count(1)
    page.locator("select[data-filter=state]").select_option("loading")
    expect(rows(page, "track")).to_have_count(1)
    assert column(page, "track", 1) == ["E-MTAB-1"]
    expect(page.locator("#track .status")).to_have_text("1 of 3 datasets")
    expect(page.locator("#discover tbody td.none")).to_have_text("No matching datasets.")
    page.locator("select[data-filter=state]").select_option("")
    page.locator("select[data-filter=organism]").select_option("Mus musculus")
    assert column(page, "track", 1) == ["E-MTAB-2"]
    page.locator("select[data-filter=organism]").select_option("")
    page.locator("select[data-filter=stage]").select_option("incoming")
    expect(rows(page, "track")).to_have_count(3)  # E-MTAB-1 is still in incoming too
    page.locator("select[data-filter=stage]").select_option("")
    page.locator("input[data-filter=search]").fill("BRAIN")
    assert column(page, "track", 1) == ["E-MTAB-2"]
    page.locator("input[data-filter=search]").fill("")
    page.locator("input[data-filter=duplicates]").check()
    assert column(page, "discover", 1) == ["E-GEOD-5"]
    expect(rows(page, "track")).to_have_count(0)
    page.locator("input[data-filter=duplicates]").uncheck()
    page.locator("input[data-filter=problems]").check()
    assert column(page, "track", 1) == ["E-MTAB-1"]  # E-GEOD-5 (GSE5) duplicates it
    page.locator("input[data-filter=problems]").uncheck()
    expect(page.locator("#track .status")).to_have_text("3 datasets")

    accession = page.locator("#track thead").get_by_role("button", name="accession", exact=True)
    accession.click()
    expect(page.locator("#track thead th").first).to_have_attribute("aria-sort", "ascending")
    ascending = column(page, "track", 1)
    assert ascending == sorted(ascending, key=str.lower)
    accession.click()
    expect(page.locator("#track thead th").first).to_have_attribute("aria-sort", "descending")
    assert column(page, "track", 1) == ascending[::-1]


def test_a_click_shows_the_datasets_history(opened: WatchedPage) -> None:
    page = opened.page
    history = page.locator("#history")
    expect(history).to_be_hidden()
    rows(page, "track").filter(has_text="E-MTAB-1").click()
    expect(history).to_be_visible()
    expect(history.locator(".accession")).to_have_text("E-MTAB-1 (p1)")
    events = history.locator("table.events tbody tr")
    moves = history.locator("table.events tbody tr.move td:nth-child(3)")
    assert moves.all_inner_texts() == ["discovered", "state_changed"]
    assert events.count() >= 3  # a location added in loading, too
    first = events.first.locator("td")
    assert first.all_inner_texts()[:5] == ["1", "2025-03-01 10:00:00", "discovered", "", "incoming"]
    change = history.locator("table.events tbody tr.move").nth(1).locator("td")
    assert change.nth(5).inner_text() == "1 d 0 h"  # a day in incoming
    stays = history.locator(".stays div")
    assert stays.all_inner_texts() == ["incoming\n1 d 0 h", "loading\n1 d 2 h (now, for 1 d 2 h)"]
    # the keyboard opens one too
    rows(page, "track").filter(has_text="E-MTAB-2").focus()
    page.keyboard.press("Enter")
    expect(history.locator(".accession")).to_have_text("E-MTAB-2 (p1)")
    expect(rows(page, "track").filter(has_text="E-MTAB-2")).to_have_class("selected")
    expect(page.locator("tr.selected")).to_have_count(1)


def test_markup_in_an_accession_and_a_title_stays_text(opened: WatchedPage) -> None:
    page = opened.page
    assert page.locator(f"#track tbody td:text-is('{EVIL}')").count() == 1
    assert page.locator(f"#track tbody td:text-is('{EVIL_TITLE}')").count() == 1
    assert page.locator("img").count() == 0
    assert page.locator("main b").count() == 0
    rows(page, "track").filter(has_text=EVIL).click()
    expect(page.locator("#history .accession")).to_have_text(f"{EVIL} (p1)")
    assert page.evaluate("() => window.__xss") is None


def test_the_no_network_check_can_fail(browser: Browser) -> None:
    with watched_page(browser) as watched:
        watched.page.set_content('<img src="https://example.invalid/x.png">')
        assert "https://example.invalid/x.png" in watched.network_requests()
