"""Browser fixtures: one Chromium per session, a fresh watched page per test, a real report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from steward.packaging.report import ReportFile, ReportInput, ReportLibrary, write_report
from tests.browser import WatchedPage, chromium, watched_page

EVIL = '<img src=x onerror="window.__xss=1">'
FORMULA = '=HYPERLINK("http://evil.invalid","click")'
QUOTED = 'has, comma "and quotes"'
EXTERNAL = "https://example.org/external/file30.bam"
FILES = 250


@dataclass(frozen=True)
class Report:
    path: Path
    url: str
    data: ReportInput


def _file(i: int) -> ReportFile:
    project = "P1" if i < 150 else "P2"
    data_type = ("fastq", "fastq", "fastq", "bam", "vcf")[i % 5]
    sample = {13: EVIL, 21: FORMULA, 22: QUOTED}.get(i, f"S{i % 12}")
    storage = {11: "GLACIER", 12: "DEEP_ARCHIVE", 17: "GLACIER_IR"}.get(i, "STANDARD")
    return ReportFile(
        path=f"data/{project}/{data_type}/RUN{i % 3}/L{i:03d}/file{i:03d}.{data_type}",
        size=0 if i == 7 else (i * 7919) % 100_000 + 1,
        sha256=f"{i:064x}",
        md5=f"{i:032x}",
        sample_id=sample,
        library_id=f"L{i:03d}",
        subject_id=f"SBJ{i % 5}",
        project_id=project,
        data_type=data_type,
        run_id=f"RUN{i % 3}",
        lane=str(i % 4 + 1) if data_type == "fastq" else None,
        workflow_name=None if data_type == "fastq" else "dragen-wgts-dna",
        source_uri=EXTERNAL if i == 30 else f"s3://source/{project}/{i}.dat",
        storage_class=storage,
    )


def report_input() -> ReportInput:
    files = [_file(i) for i in range(FILES)]
    libraries = [
        ReportLibrary(f.library_id, f.sample_id, f.subject_id, f.project_id) for f in files
    ]
    libraries.append(ReportLibrary("L999", "S99", "SBJ9", "P2"))
    return ReportInput(
        package_name="browser test",
        package_id="pkg_01TEST",
        created_by="alice@example.org",
        created_at=datetime(2025, 3, 4, 5, 6, tzinfo=UTC),
        checksum_algorithms=("sha256", "md5"),
        mode="copy",
        files=files,
        libraries=libraries,
        libraries_without_files=["L999"],
        warnings=["Manifest row 12 was ignored."],
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    path = tmp_path_factory.mktemp("report") / "report.html"
    data = report_input()
    write_report(data, path)
    return Report(path, path.as_uri(), data)


@pytest.fixture
def watched(browser: Browser) -> Iterator[WatchedPage]:
    with watched_page(browser, viewport={"width": 1280, "height": 900}) as page:
        yield page
        assert (page.console_errors, page.page_errors) == ([], []), "the page reported errors"


@pytest.fixture
def browser_dark(browser: Browser) -> Iterator[WatchedPage]:
    with watched_page(browser, color_scheme="dark") as page:
        yield page
        assert (page.console_errors, page.page_errors) == ([], []), "the page reported errors"


@pytest.fixture
def opened(watched: WatchedPage, report: Report) -> WatchedPage:
    """The report, loaded, with every chart drawn."""
    watched.page.goto(report.url)
    for chart in ("chart-samples", "chart-types", "chart-projects"):
        watched.page.locator(f"#{chart} svg.main-svg").first.wait_for()
    return watched
