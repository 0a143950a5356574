"""The package report in real Chromium: charts, sorting, filtering, tabs, paging, CSV, warnings,
untrusted values, and not one network request."""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from steward.packaging.report import FILE_FIELDS
from tests.browser import WatchedPage, watched_page
from tests.e2e.conftest import EVIL, EXTERNAL, FILES, FORMULA, QUOTED, Report

# columns of the "All files" table
PROJECT, SAMPLE, LIBRARY, DATA_TYPE, PATH, SIZE = 1, 2, 3, 4, 5, 6


def status(page: Page, table: str) -> Locator:
    return page.locator(f"#{table} .pager .status")


def cells(page: Page, table: str, column: int) -> list[str]:
    return page.locator(f"#{table} tbody tr td:nth-child({column})").all_inner_texts()


def exact_sizes(page: Page, table: str) -> list[int]:
    titles = page.locator(f"#{table} tbody td.size").evaluate_all("els => els.map(e => e.title)")
    return [int(re.sub(r"[^0-9]", "", title)) for title in titles]


def every_page(page: Page, table: str, column: int) -> list[str]:
    values = cells(page, table, column)
    next_button = page.locator(f"#{table} .pager [data-page=next]")
    while next_button.is_enabled():
        next_button.click()
        values += cells(page, table, column)
    return values


def header(page: Page, table: str, name: str) -> Locator:
    return page.locator(f"#{table} thead").get_by_role("button", name=name, exact=True)


def test_opens_offline_with_charts_and_untrusted_values_as_text(
    opened: WatchedPage, report: Report
) -> None:
    page = opened.page
    samples = {f.sample_id for f in report.data.files}
    expect(page.locator("#chart-samples g.point")).to_have_count(len(samples))
    expect(page.locator("#chart-types g.point")).to_have_count(3)  # fastq, bam, vcf
    assert EVIL in page.locator("#chart-samples g.xtick text").all_text_contents()
    caption = page.locator("#chart-samples").get_attribute("aria-labelledby")
    assert page.locator(f"#{caption}").inner_text().startswith("Size per sample")
    assert page.locator(f"#files tbody td:text-is('{EVIL}')").count() == 1
    assert page.locator("img").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert opened.network_requests() == [report.url]
    assert opened.console_errors == []
    assert opened.page_errors == []


def test_sort_sizes_numerically_and_text_naturally(opened: WatchedPage, report: Report) -> None:
    page = opened.page
    sizes = sorted(f.size for f in report.data.files)
    size = header(page, "files", "Size")
    size.click()
    expect(page.locator("#files th.size")).to_have_attribute("aria-sort", "ascending")
    assert exact_sizes(page, "files") == sizes[:100]
    assert cells(page, "files", SIZE)[0] == "0 B"
    size.click()
    expect(page.locator("#files th.size")).to_have_attribute("aria-sort", "descending")
    assert exact_sizes(page, "files") == sizes[::-1][:100]
    header(page, "files", "Sample").click()
    expect(page.locator("#files th.size")).to_have_attribute("aria-sort", "none")
    samples = every_page(page, "files", SAMPLE)
    assert len(samples) == FILES
    assert samples.index("S2") < samples.index("S10")
    runs = [value for value, _ in itertools.groupby(samples)]
    assert len(runs) == len(set(samples))  # each sample's rows together


def test_filter_matches_substrings_in_any_column(opened: WatchedPage) -> None:
    page = opened.page
    page.locator("#files .filter").fill("FILE00")  # case-insensitive, path column
    expect(status(page, "files")).to_have_text("Rows 1–10 of 10 (filtered from 250) · page 1 of 1")
    assert all("file00" in path for path in cells(page, "files", PATH))
    page.locator("#files .filter").fill("no such text")
    expect(page.locator("#files tbody td.none")).to_have_text("No matching rows.")
    expect(status(page, "files")).to_contain_text("0 rows of 0")


def test_tabs_per_project_and_data_type(opened: WatchedPage) -> None:
    page = opened.page
    projects = page.locator("#files [role=tablist][data-key=project_id]")
    p2 = projects.get_by_role("tab", name=re.compile(r"^P2\b"))
    p2.click()
    expect(p2).to_have_attribute("aria-selected", "true")
    expect(status(page, "files")).to_contain_text("of 100 (filtered from 250)")
    assert set(cells(page, "files", PROJECT)) == {"P2"}
    page.locator("#files [role=tablist][data-key=data_type]").get_by_role(
        "tab", name=re.compile(r"^vcf\b")
    ).click()
    expect(status(page, "files")).to_contain_text("of 20 (filtered from 250)")
    assert set(cells(page, "files", DATA_TYPE)) == {"vcf"}
    p2.press("ArrowRight")  # wraps round to "All projects"
    expect(projects.get_by_role("tab", name=re.compile("^All"))).to_be_focused()
    expect(status(page, "files")).to_contain_text("of 50 (filtered from 250)")
    # a table with one data type gets no data-type tabs; secondary has bam and vcf
    assert page.locator("#fastq [role=tablist][data-key=data_type]").count() == 0
    assert page.locator("#secondary [role=tablist][data-key=data_type] [role=tab]").count() == 3


def test_pagination(opened: WatchedPage) -> None:
    page = opened.page
    pager = page.locator("#files .pager")
    expect(status(page, "files")).to_have_text("Rows 1–100 of 250 · page 1 of 3")
    expect(pager.locator("[data-page=prev]")).to_be_disabled()
    expect(page.locator("#files tbody tr")).to_have_count(100)
    first_page = cells(page, "files", LIBRARY)
    pager.locator("[data-page=next]").click()
    expect(status(page, "files")).to_have_text("Rows 101–200 of 250 · page 2 of 3")
    assert set(cells(page, "files", LIBRARY)).isdisjoint(first_page)
    pager.locator("[data-page=last]").click()
    expect(status(page, "files")).to_have_text("Rows 201–250 of 250 · page 3 of 3")
    expect(page.locator("#files tbody tr")).to_have_count(50)
    expect(pager.locator("[data-page=next]")).to_be_disabled()
    pager.locator("[data-page=first]").click()
    assert cells(page, "files", LIBRARY) == first_page


def download_csv(page: Page, table: str, tmp_path: Path) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.locator(f"#{table} .download").click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    with target.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_download_of_filtered_rows_quoted_and_defused(
    opened: WatchedPage, report: Report, tmp_path: Path
) -> None:
    page = opened.page
    page.locator("#files .filter").fill("file02")
    expect(status(page, "files")).to_contain_text("of 10 (filtered")
    filtered = download_csv(page, "files", tmp_path)
    assert [r["path"].rsplit("/", 1)[1].split(".")[0] for r in filtered] == [
        f"file{i:03d}" for i in range(20, 30)
    ]
    assert list(filtered[0]) == list(FILE_FIELDS)
    assert (tmp_path / "browser_test-files.csv").exists()

    page.locator("#files .filter").fill("")
    expect(status(page, "files")).to_contain_text("of 250 ·")
    rows = {r["library_id"]: r for r in download_csv(page, "files", tmp_path)}
    assert len(rows) == FILES
    assert rows["L021"]["sample_id"] == "'" + FORMULA  # shown as text, never run
    assert rows["L022"]["sample_id"] == QUOTED
    assert rows["L013"]["sample_id"] == EVIL
    assert rows["L030"]["source_uri"] == EXTERNAL
    by_library = {f.library_id: f for f in report.data.files}
    assert all(int(r["size"]) == by_library[lib].size for lib, r in rows.items())
    assert rows["L003"]["lane"] == ""  # a bam file has no lane
    assert rows["L011"]["warning"].startswith("archived (GLACIER)")


def test_warnings_listed_and_rows_highlighted(opened: WatchedPage) -> None:
    page = opened.page
    kinds = page.locator("#warnings li.warning").evaluate_all("els => els.map(e => e.className)")
    assert kinds == [
        "warning warning-cold",
        "warning warning-empty",
        "warning warning-no-files",
        "warning warning-other",
    ]
    warned = page.locator("#fastq tbody tr.warn")
    expect(warned).to_have_count(3)  # GLACIER, DEEP_ARCHIVE, empty; not GLACIER_IR
    texts = warned.locator("td.warning").all_inner_texts()
    assert any("GLACIER)" in t for t in texts)
    assert any("DEEP_ARCHIVE" in t for t in texts)
    assert any("empty file" in t for t in texts)
    plain = page.locator("#fastq tbody tr:not(.warn) td").first
    colour = "el => getComputedStyle(el).backgroundColor"
    assert warned.locator("td").first.evaluate(colour) != plain.evaluate(colour)
    page.locator("#fastq .only-warned").check()
    expect(status(page, "fastq")).to_contain_text("of 3 (filtered from 150)")
    page.locator("#metadata .only-warned").check()
    expect(page.locator("#metadata tbody tr.warn td.warning")).to_have_text(
        "⚠ no files in this package"
    )


def test_dark_mode_and_print(browser_dark: WatchedPage, report: Report) -> None:
    page = browser_dark.page
    page.goto(report.url)
    page.locator("#chart-samples svg.main-svg").first.wait_for()
    background = page.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
    assert background == "rgb(22, 25, 29)"
    page.emulate_media(media="print")
    expect(page.locator("nav")).to_be_hidden()
    expect(page.locator("#files .controls")).to_be_hidden()
    expect(page.locator("#files tbody tr").first).to_be_visible()
    assert browser_dark.console_errors == []


def test_watched_page_sees_network_requests(browser: Browser) -> None:
    """The no-network check can fail: a page that does fetch something is caught."""
    with watched_page(browser) as watched:
        watched.page.set_content('<img src="https://example.invalid/x.png">')
        assert "https://example.invalid/x.png" in watched.network_requests()
