"""The package report's HTML: figures, sections, tabs, warnings, escaping, no external resources,
atomic writes. Behaviour in a real browser is in tests/e2e/test_report_browser.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from steward.errors import StewardError, ValidationFailed
from steward.html import json_for_script
from steward.packaging.report import (
    EXAMPLES,
    TOP_SAMPLES,
    ReportFile,
    ReportInput,
    ReportLibrary,
    human_size,
    is_cold,
    render_report,
    section_of,
    write_report,
)

EVIL = "<img src=x onerror=alert(1)>"
CLOSER = "</script><script>alert(2)</script><!--"


def rfile(n: int = 0, **changes: Any) -> ReportFile:
    base = ReportFile(
        path=f"data/P1/fastq/RUN1/L{n}/x{n}.fastq.gz",
        size=1000 + n,
        sha256=f"{n:064x}",
        md5=f"{n:032x}",
        sample_id=f"S{n}",
        library_id=f"L{n}",
        subject_id=f"SBJ{n}",
        project_id="P1",
        data_type="fastq",
        run_id="RUN1",
        lane="1",
        workflow_name=None,
        source_uri=f"s3://src/x{n}.fastq.gz",
        storage_class=None,
    )
    return replace(base, **changes)


def library(f: ReportFile) -> ReportLibrary:
    return ReportLibrary(f.library_id, f.sample_id, f.subject_id, f.project_id)


def rinput(files: list[ReportFile], **changes: Any) -> ReportInput:
    base = ReportInput(
        package_name="pkg-one",
        package_id="pkg_01ABC",
        created_by="alice",
        created_at=datetime(2025, 1, 2, 10, 30, tzinfo=UTC),
        checksum_algorithms=("sha256", "md5"),
        mode="copy",
        files=files,
        libraries=[library(f) for f in files],
        libraries_without_files=[],
    )
    return replace(base, **changes)


class Page(HTMLParser):
    """The rendered page as tags, attributes, texts by element id, and script bodies."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._stack: list[str | None] = []
        self._script: dict[str, str | None] | None = None
        self.text_by_id: dict[str, str] = {}
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))
        if tag not in {"meta", "input", "br", "link", "img"}:
            self._stack.append(attributes.get("id"))
            if attributes.get("id"):
                self.text_by_id.setdefault(str(attributes["id"]), "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attributes, body = self.scripts[-1]
            self.scripts[-1] = (attributes, body + data)
            return
        for element_id in self._stack:
            if element_id:
                self.text_by_id[element_id] += data

    def ids(self) -> set[str]:
        return {str(a["id"]) for _, a in self.tags if a.get("id")}

    def all(self, tag: str, **match: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(match[k] in (a.get(k) or "").split() for k in match)
        ]

    def data(self) -> dict[str, Any]:
        [body] = [b for a, b in self.scripts if a.get("id") == "report-data"]
        return json.loads(body)  # type: ignore[no-any-return]

    def text(self, element_id: str) -> str:
        return " ".join(self.text_by_id[element_id].split())


def facts(html: str) -> dict[str, str]:
    """Summary terms and definitions, whitespace-normalised."""
    block = html.split('<dl class="facts">', 1)[1].split("</dl>", 1)[0]
    pairs = re.findall(r"<dt>(.*?)</dt><dd(?: title=\"([^\"]*)\")?>(.*?)</dd>", block, re.S)
    return {dt: re.sub(r"<[^>]+>", "", dd).strip() for dt, _, dd in pairs} | {
        f"{dt} title": title for dt, title, _ in pairs if title
    }


def render(data: ReportInput) -> tuple[str, Page]:
    html = render_report(data)
    return html, Page(html)


# ---- summary ---------------------------------------------------------------------------------


def test_summary_figures() -> None:
    files = [
        rfile(1, size=1_500_000_000, project_id="P1", sample_id="S1", subject_id="A"),
        rfile(2, size=500_000_000, project_id="P1", sample_id="S1", subject_id="A"),
        rfile(3, size=0, project_id="P2", sample_id="S2", subject_id="B", data_type="bam"),
        rfile(4, size=7, project_id="P2", sample_id="S3", subject_id="B", data_type="vcf"),
    ]
    extra = ReportLibrary("L9", "S9", "C", "P3")  # in the manifest, without files
    data = rinput(files, libraries=[*map(library, files), extra], timezone="Europe/Helsinki")
    html, _ = render(data)
    got = facts(html)
    assert got["Files"] == "4"
    assert got["Total size"] == "2.00 GB"
    assert got["Total size title"] == "2,000,000,007 bytes"
    assert got["Projects (3)"] == "P1, P2, P3"
    assert got["Data types (3)"] == "bam (1), fastq (2), vcf (1)"
    assert got["Subjects"] == "3"
    assert got["Samples"] == "4"
    assert got["Libraries"] == "5 in the manifest, 1 without files"
    assert got["Checksums"] == "sha256, md5"
    assert got["Mode"] == "copy"
    assert got["Created by"] == "alice"
    assert got["Created"] == "2025-01-02 12:30 +02:00 Europe/Helsinki"  # UTC+2 in winter
    assert 'datetime="2025-01-02T10:30:00Z"' in html


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        render_report(rinput([rfile()], timezone="Mars/Olympus"))
    assert caught.value.details[0].field == "tz"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.00 kB"),
        (1234, "1.23 kB"),
        (99_949, "99.9 kB"),
        (999_499, "999 kB"),
        (999_500, "1.00 MB"),
        (1_234_567_890, "1.23 GB"),
        (10**18, "1.00 EB"),
        (10**21, "1000 EB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_sections_by_data_type() -> None:
    assert [section_of(t) for t in ("fastq", "FASTQ", "ora", "bam", "cram", "vcf", "x")] == [
        "fastq",
        "fastq",
        "fastq",
        "secondary",
        "secondary",
        "secondary",
        "secondary",
    ]


# ---- sections and tabs -----------------------------------------------------------------------


def sections(page: Page) -> list[str]:
    return [str(a["id"]) for a in page.all("section")]


def test_all_sections_when_there_is_everything() -> None:
    _, page = render(rinput([rfile(1), rfile(2, data_type="bam")]))
    assert sections(page) == [
        "warnings",
        "summary",
        "charts",
        "metadata",
        "fastq",
        "secondary",
        "files",
    ]
    nav = [a["href"] for a in page.all("a")]
    assert nav == ["#summary", "#charts", "#metadata", "#fastq", "#secondary", "#files"]


def test_sections_only_for_data_present() -> None:
    _, fastq_only = render(rinput([rfile(1)]))
    assert "secondary" not in sections(fastq_only)
    assert "fastq" in sections(fastq_only)
    _, bam_only = render(rinput([rfile(1, data_type="cram")], libraries=[]))
    assert "fastq" not in sections(bam_only)
    assert "metadata" not in sections(bam_only)
    assert "secondary" in sections(bam_only)


def test_an_empty_package_still_renders() -> None:
    html, page = render(rinput([], libraries=[ReportLibrary("L1", "S1", "B1", "P1")]))
    assert sections(page) == ["warnings", "summary", "metadata", "files"]
    assert "No files in this package." in html
    assert page.data()["charts"] == []
    assert facts(html)["Total size"] == "0 B"


def tablists(page: Page, table: str) -> dict[str, list[str]]:
    """Tab labels per tab list inside one table section, in order."""
    html_lists: dict[str, list[str]] = {}
    inside = False
    current = ""
    for tag, attrs in page.tags:
        if tag == "section":
            inside = attrs.get("id") == table
        if inside and attrs.get("role") == "tablist":
            current = str(attrs["data-key"])
            html_lists[current] = []
        if inside and attrs.get("role") == "tab":
            html_lists[current].append(str(attrs.get("data-value", "*")))
    return html_lists


def test_tabs_only_when_several_projects_or_types() -> None:
    _, single = render(rinput([rfile(1), rfile(2)]))
    assert tablists(single, "files") == {}
    assert 'role="tablist"' not in render_report(rinput([rfile(1), rfile(2)]))

    files = [
        rfile(1, project_id="P1"),
        rfile(2, project_id="P2"),
        rfile(3, project_id="P2", data_type="bam"),
        rfile(4, project_id="P2", data_type="vcf"),
    ]
    _, page = render(rinput(files))
    assert tablists(page, "files") == {
        "project_id": ["*", "P1", "P2"],
        "data_type": ["*", "bam", "fastq", "vcf"],
    }
    assert tablists(page, "fastq") == {"project_id": ["*", "P1", "P2"]}
    assert tablists(page, "secondary") == {"data_type": ["*", "bam", "vcf"]}  # one project
    assert tablists(page, "metadata") == {"project_id": ["*", "P1", "P2"]}


def test_a_blank_project_gets_its_own_tab_not_the_all_tab() -> None:
    html, page = render(rinput([rfile(1, project_id=""), rfile(2)]))
    assert tablists(page, "files") == {"project_id": ["*", "", "P1"]}
    assert 'data-value="">(none) <span class="count">1</span>' in html


def test_tab_counts() -> None:
    files = [rfile(1, project_id="P1"), rfile(2, project_id="P2"), rfile(3, project_id="P2")]
    html = render_report(rinput(files))
    files_section = html.split('id="files"', 1)[1]
    assert re.search(r'data-value="P2">P2 <span class="count">2</span>', files_section)
    assert re.search(r"data-all>All projects <span class=\"count\">3</span>", files_section)


# ---- warnings --------------------------------------------------------------------------------


def warning_kinds(page: Page) -> list[str]:
    return [
        str(a["class"]).split()[1].removeprefix("warning-")
        for a in page.all("li", **{"class": "warning"})
    ]


@pytest.mark.parametrize(
    ("storage_class", "cold"),
    [
        ("GLACIER", True),
        ("DEEP_ARCHIVE", True),
        ("glacier", True),
        ("ARCHIVE", True),
        ("GLACIER_IR", False),
        ("STANDARD", False),
        ("STANDARD_IA", False),
        ("INTELLIGENT_TIERING", False),
        (None, False),
    ],
)
def test_cold_storage_classes(storage_class: str | None, cold: bool) -> None:
    assert is_cold(storage_class) is cold
    _, page = render(rinput([rfile(1, storage_class=storage_class)]))
    assert warning_kinds(page) == (["cold"] if cold else [])
    [row] = page.data()["files"]["rows"]
    assert bool(row[14]) is cold


def test_no_warnings() -> None:
    html, page = render(rinput([rfile(1)]))
    assert warning_kinds(page) == []
    assert "No warnings" in page.text("warnings")
    assert 'class="only-warned"' not in html


def test_each_warning_cause() -> None:
    files = [
        rfile(1, storage_class="GLACIER"),
        rfile(2, storage_class="DEEP_ARCHIVE"),
        rfile(3, size=0),
        rfile(4, size=0, storage_class="GLACIER"),
        rfile(5),
    ]
    libraries = [*map(library, files), ReportLibrary("L8", "S8", "B8", "P1")]
    data = rinput(
        files,
        libraries=libraries,
        libraries_without_files=["L9"],  # the caller's, not in the library list
        warnings=["Row 7 of the manifest was a duplicate."],
    )
    html, page = render(data)
    assert warning_kinds(page) == ["cold", "empty", "no-files", "other"]
    text = page.text("warnings")
    assert "3 files are in archive storage (DEEP_ARCHIVE: 1, GLACIER: 2)" in text
    assert "2 files are empty (0 bytes)." in text
    assert "2 libraries have no files in this package." in text
    assert "Row 7 of the manifest was a duplicate." in text
    assert "<code>L8</code>" in html
    assert "<code>L9</code>" in html
    table = page.data()["files"]
    warnings = {
        row[0].rsplit("/", 1)[1]: row[table["fields"].index("warning")] for row in table["rows"]
    }
    assert warnings == {
        "x1.fastq.gz": "archived (GLACIER): restore before reading",
        "x2.fastq.gz": "archived (DEEP_ARCHIVE): restore before reading",
        "x3.fastq.gz": "empty file (0 bytes)",
        "x4.fastq.gz": "archived (GLACIER): restore before reading; empty file (0 bytes)",
        "x5.fastq.gz": "",
    }
    libs = page.data()["libraries"]
    flagged = [row[0] for row in libs["rows"] if row[-1]]
    assert flagged == ["L8"]
    assert "Only rows with warnings (4)" in html.split('id="fastq"', 1)[1]


def test_warning_examples_are_capped() -> None:
    files = [rfile(n, size=0) for n in range(EXAMPLES + 5)]
    html, page = render(rinput(files))
    assert f"{EXAMPLES + 5} files are empty" in page.text("warnings")
    assert f"Show {EXAMPLES} of {EXAMPLES + 5}" in html
    assert "…and 5 more" in html


def test_singular_wording() -> None:
    _, page = render(rinput([rfile(1, storage_class="GLACIER")], libraries_without_files=["L7"]))
    text = page.text("warnings")
    assert "1 file is in archive storage (GLACIER: 1) and must be restored before it can" in text
    assert "1 library has no files" in text


# ---- data, tables and charts -----------------------------------------------------------------


def test_embedded_rows_and_library_totals() -> None:
    files = [rfile(1), rfile(2, library_id="L1", size=5), rfile(3, data_type="bam")]
    _, page = render(rinput(files, libraries=[library(files[0]), library(files[2])]))
    data = page.data()
    fields = data["files"]["fields"]
    rows = [dict(zip(fields, row, strict=True)) for row in data["files"]["rows"]]
    assert [r["section"] for r in rows] == ["fastq", "fastq", "secondary"]
    assert rows[0] | {"warning": "", "section": "fastq"} == {
        "path": "data/P1/fastq/RUN1/L1/x1.fastq.gz",
        "size": 1001,
        "sha256": f"{1:064x}",
        "md5": f"{1:032x}",
        "sample_id": "S1",
        "library_id": "L1",
        "subject_id": "SBJ1",
        "project_id": "P1",
        "data_type": "fastq",
        "run_id": "RUN1",
        "lane": "1",
        "workflow_name": None,
        "source_uri": "s3://src/x1.fastq.gz",
        "storage_class": None,
        "warning": "",
        "section": "fastq",
    }
    libs = [
        dict(zip(data["libraries"]["fields"], r, strict=True)) for r in data["libraries"]["rows"]
    ]
    assert [(r["library_id"], r["files"], r["size"]) for r in libs] == [
        ("L1", 2, 1006),
        ("L3", 1, 1003),
    ]
    assert set(data["tables"]) == {"metadata", "fastq", "secondary", "files"}
    assert data["tables"]["files"]["csv"] == fields[:-1]  # everything but the section


def test_charts() -> None:
    files = [
        rfile(n, sample_id=f"S{n}", size=n * 10, project_id=f"P{n % 2}", data_type=t)
        for n, t in zip(range(1, 61), ["fastq", "bam", "vcf"] * 20, strict=True)
    ]
    html, page = render(rinput(files))
    samples, types, projects = page.data()["charts"]
    assert samples["data"][0]["x"][:3] == ["S60", "S59", "S58"]  # largest first
    assert len(samples["data"][0]["x"]) == TOP_SAMPLES
    assert samples["data"][0]["y"][0] == 600
    assert f"largest {TOP_SAMPLES} of 60 samples" in samples["caption"]
    assert types["data"][0]["x"] == ["bam", "fastq", "vcf"]
    assert types["data"][0]["y"] == [20, 20, 20]
    assert [t["name"] for t in projects["data"]] == ["bam", "fastq", "vcf"]
    assert projects["layout"]["barmode"] == "stack"
    total = sum(sum(t["y"]) for t in projects["data"])
    assert total == sum(f.size for f in files)
    for chart in (samples, types, projects):  # text alternatives
        [div] = [a for a in page.all("div") if a.get("id") == chart["id"]]
        assert div["role"] == "img"
        caption_id = str(div["aria-labelledby"])
        assert page.text(caption_id) == chart["caption"]
    assert html.count("<figcaption") == 3


# ---- untrusted values ------------------------------------------------------------------------


def test_untrusted_values_render_as_text_everywhere() -> None:
    evil = rfile(
        1,
        sample_id=EVIL,
        project_id=CLOSER,
        data_type='bam" onmouseover="alert(3)',
        path=f"data/{CLOSER}/x",
        library_id="L&amp;1",
    )
    data = rinput(
        [evil, rfile(2)],
        package_name=EVIL,
        created_by=CLOSER,
        warnings=[EVIL],
        libraries_without_files=[EVIL],
    )
    html, page = render(data)
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert "<img" not in outside_scripts
    assert "<script>alert" not in outside_scripts
    assert "&lt;img src=x onerror=alert(1)&gt;" in outside_scripts
    assert [t for t, _ in page.tags if t in {"img", "iframe", "object", "embed"}] == []
    assert not [a for _, a in page.tags for k in a if k.startswith("on")]  # no handlers
    assert [a.get("id") for a, _ in page.scripts] == ["report-data", None, None]
    # every value survives the JSON block exactly, which no value can close early
    block = page.scripts[0][1]
    assert "<" not in block
    assert ">" not in block
    assert "&" not in block
    payload = page.data()
    row = dict(zip(payload["files"]["fields"], payload["files"]["rows"][0], strict=True))
    assert (row["sample_id"], row["project_id"], row["library_id"]) == (EVIL, CLOSER, "L&amp;1")
    assert payload["package"] == EVIL
    # tab values are attribute-escaped and come back intact
    values = {a.get("data-value") for a in page.all("button") if a.get("role") == "tab"}
    assert {'bam" onmouseover="alert(3)', CLOSER} <= values
    # Plotly decodes entities and renders some tags in labels: give it escaped text
    samples_chart = payload["charts"][0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in samples_chart["data"][0]["x"]
    assert page.text("warnings").count(EVIL) == 2


def test_json_for_script_round_trips() -> None:
    value = {"a": [CLOSER, EVIL, "&amp;", "\u2028\u2029", "é", None, 1]}
    text = json_for_script(value)
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == value


# ---- self-contained --------------------------------------------------------------------------

URL_ATTRIBUTES = {"src", "href", "action", "formaction", "data", "poster", "srcset", "xlink:href"}


def test_no_external_resources() -> None:
    external = rfile(1, source_uri="https://example.org/x.fastq.gz", path="data/http://x")
    html, page = render(rinput([external]))
    urls = [(t, k, v) for t, a in page.tags for k, v in a.items() if k in URL_ATTRIBUTES]
    assert urls
    assert all(k == "href" and str(v).startswith("#") for _, k, v in urls), urls
    assert [t for t, _ in page.tags if t in {"link", "iframe", "base", "object"}] == []
    assert all("src" not in attrs for attrs, _ in page.scripts)
    assert "@import" not in html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "https://example.org/x.fastq.gz" in page.scripts[0][1]  # data values are fine


def test_content_security_policy_allows_exactly_our_scripts() -> None:
    _, page = render(rinput([rfile(1)]))
    [meta] = [a for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    policy = {part.split()[0]: part.split()[1:] for part in str(meta["content"]).split("; ")}
    assert policy["default-src"] == ["'none'"]
    assert policy["connect-src"] == ["'none'"]
    executable = [body for attrs, body in page.scripts if attrs.get("type") is None]
    expected = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in executable
    ]
    assert sorted(policy["script-src"]) == sorted(expected)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert len(executable[0]) > 1_000_000  # plotly.js itself, inlined


# ---- writing ---------------------------------------------------------------------------------


def test_write_report(tmp_path: Path) -> None:
    data = rinput([rfile(1)])
    target = tmp_path / "deep" / "report.html"
    write_report(data, target)
    assert target.read_text("utf-8") == render_report(data)
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_failed_render_keeps_the_previous_report(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("previous", "utf-8")
    with pytest.raises(ValidationFailed):
        write_report(rinput([rfile(1)], timezone="No/Such_Zone"), target)
    assert target.read_text("utf-8") == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.mkdir()  # os.replace cannot put a file over a directory
    (target / "keep").write_text("x", "utf-8")
    with pytest.raises(StewardError, match="cannot write the report"):
        write_report(rinput([rfile(1)]), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert [p.name for p in target.iterdir()] == ["keep"]
