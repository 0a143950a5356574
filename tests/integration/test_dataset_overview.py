"""The datasets overview with real parts: folder trees crawled into SQLite and PostgreSQL on
four days, the series and histories computed from the ledger, the page written through the CLI.

The world is test_crawl's, crawled on three days (the crawl's clock set, so its events are
dated then): on 1 March 2025 E-GEOD-5 external, E-MTAB-1 incoming, E-MTAB-2 and E-MTAB-4
loading, E-MTAB-3 and E-MTAB-6 published; on 2 March E-MTAB-1 has moved to published and
E-MTAB-2 has vanished (missing); on 3 March at 23:30 UTC — already 4 March in Helsinki —
E-MTAB-2 is back in loading. The overview is made on 5 March at noon.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from steward.config import Settings
from steward.errors import NotFound, ValidationFailed
from steward.services import crawl, dataset_overview, ledger
from steward.services.dataset_overview import Move, state_order, state_series
from steward.services.datasets import DATASET
from tests.conftest import CliResult, Consortium
from tests.crawl_trees import dataset_files, write_tree
from tests.integration.test_crawl import build, config_of, run

Cli = Callable[..., CliResult]
UTC_ZONE = ZoneInfo("UTC")
HELSINKI = ZoneInfo("Europe/Helsinki")
DAY1 = datetime(2025, 3, 1, 10, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 10, tzinfo=UTC)
LATE3 = datetime(2025, 3, 3, 23, 30, tzinfo=UTC)  # 4 March, 01:30 in Helsinki
NOW = datetime(2025, 3, 5, 12, tzinfo=UTC)
DAYS = tuple(date(2025, 3, d) for d in range(1, 6))


@dataclass
class Clock:
    """The crawl's and the ledger's clock: what the crawl was run "on"."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    at = Clock(DAY1)
    monkeypatch.setattr(crawl, "utcnow", at)
    monkeypatch.setattr(ledger, "utcnow", at)
    return at


def crawl_three_days(c: Consortium, root: Path, clock: Clock) -> None:
    """The world of the module docstring, crawled for real on its three days."""
    build(root)
    config = config_of(root)
    clock.now = DAY1
    run(c, config)
    clock.now = DAY2
    shutil.move(root / "incoming" / "E-MTAB-1", root / "published" / "E-MTAB-1")
    shutil.rmtree(root / "incoming" / "E-MTAB-2")
    shutil.rmtree(root / "loading" / "E-MTAB-2")
    assert run(c, config).counts["missing"].examples == ["E-MTAB-2 (was loading)"]
    clock.now = LATE3
    write_tree(root / "loading", dataset_files("E-MTAB-2", "Brain", "Mus musculus"))
    assert run(c, config).counts["reappeared"].examples == ["E-MTAB-2 in loading"]


@pytest.fixture
def crawled(consortium: Consortium, tmp_path: Path, clock: Clock) -> Consortium:
    crawl_three_days(consortium, tmp_path / "storage", clock)
    return consortium


def made(c: Consortium, who: str | None = None, **kw: Any) -> dataset_overview.Overview:
    flt = kw.pop("flt", DATASET.filter())
    return dataset_overview.overview(
        c.db, actor=who or c.viewer, flt=flt, tz=kw.pop("tz", UTC_ZONE), now=NOW, **kw
    )


# ---- the series ---------------------------------------------------------------------------
def test_datasets_per_state_at_the_end_of_each_day_from_the_ledger(crawled: Consortium) -> None:
    got = made(crawled).series
    assert (got.every, got.starts) == ("day", DAYS)
    assert got.counts == {  # the stage order, then missing; a state nobody is in gets none
        "external": (1, 1, 1, 1, 1),
        "incoming": (1, 0, 0, 0, 0),
        "loading": (2, 1, 2, 2, 2),
        "published": (2, 3, 3, 3, 3),
        "missing": (0, 1, 0, 0, 0),
    }
    assert got.totals == (6, 6, 6, 6, 6)
    # the days are the caller's: E-MTAB-2 came back on 4 March in Helsinki
    helsinki = made(crawled, tz=HELSINKI).series
    assert helsinki.counts["loading"] == (2, 1, 1, 2, 2)
    assert helsinki.counts["missing"] == (0, 1, 1, 0, 0)


def test_weeks_start_on_monday_and_a_state_held_only_within_a_week_gets_no_series(
    crawled: Consortium,
) -> None:
    got = made(crawled, every="week").series
    assert got.starts == (date(2025, 2, 24), date(2025, 3, 3))
    assert got.counts == {
        "external": (1, 1),
        "loading": (1, 2),
        "published": (3, 3),
        "missing": (1, 0),
    }  # E-MTAB-1 left incoming within the first week
    # past 120 days of history the chart has weeks on its own
    later = dataset_overview.overview(
        crawled.db,
        actor=crawled.viewer,
        flt=DATASET.filter(),
        tz=UTC_ZONE,
        now=datetime(2025, 9, 1, tzinfo=UTC),
    )
    assert later.series.every == "week"
    with pytest.raises(ValidationFailed) as err:
        made(crawled, every="month")
    assert (err.value.details[0].field, err.value.details[0].accepted) == ("every", "day, week")


def test_the_configured_stage_order_orders_the_series_then_missing_and_withdrawn(
    tmp_path: Path,
) -> None:
    mine = ("external", "loading", "incoming", "analysing", "processed", "published")
    settings = Settings(home=tmp_path, crawl={"stages": list(mine)})
    assert dataset_overview.configured_stages(settings) == mine
    assert dataset_overview.configured_stages(Settings(home=tmp_path)) == DATASET_STAGES
    moves = [
        Move(DAY1, None, "withdrawn"),  # impossible in the workflow; still in its place
        Move(DAY1, None, "incoming"),
        Move(DAY1, None, "missing"),
        Move(DAY1, None, "loading"),
        Move(DAY1, "loading", "loading"),  # a location added: no move
    ]
    got = state_series(moves, order=state_order(mine), tz=UTC_ZONE, now=DAY2)
    assert list(got.counts) == ["loading", "incoming", "missing", "withdrawn"]
    assert got.counts["loading"] == (1, 1)
    # an event dated after now counts now; no move at all: no bars
    ahead = state_series([Move(NOW, None, "loading")], order=mine, tz=UTC_ZONE, now=DAY1)
    assert (ahead.starts, ahead.counts) == ((DAY1.date(),), {"loading": (1,)})
    empty = state_series([], order=mine, tz=UTC_ZONE, now=DAY1)
    assert (empty.starts, empty.counts, empty.totals) == ((), {}, ())


DATASET_STAGES = ("external", "incoming", "loading", "analysing", "processed", "published")


# ---- histories, tables, counts ------------------------------------------------------------
def test_each_dataset_has_its_history_with_the_time_in_each_state(crawled: Consortium) -> None:
    got = made(crawled)
    by_accession = {d["accession"]: d for d in got.datasets}
    brain = by_accession["E-MTAB-2"]
    moves = [(e[3], e[4], e[5]) for e in brain["events"] if e[4] != e[5]]
    assert moves == [
        ("discovered", None, "loading"),
        ("missing", "loading", "missing"),
        ("reappeared", "missing", "loading"),
    ]
    assert brain["events"][0][1] == "2025-03-01T10:00:00+00:00"
    stays = dict(brain["time_in_state"])
    assert stays["missing"] == (LATE3 - DAY2).total_seconds()
    assert stays["loading"] == ((DAY2 - DAY1) + (NOW - LATE3)).total_seconds()
    assert brain["current_for"] == (NOW - LATE3).total_seconds()
    assert brain["stages"] == ["loading"]
    liver = by_accession["E-MTAB-1"]
    assert (liver["state"], liver["problem_kinds"]) == ("published", ["duplicate"])
    heart = by_accession["E-MTAB-4"]
    assert heart["problem_kinds"] == ["duplicate-location"]
    assert heart["stages"] == ["loading"]
    assert by_accession["E-GEOD-5"]["duplicate_of"] == "E-MTAB-1"
    assert got.counts == {"external": 1, "loading": 2, "published": 3}
    assert got.events == sum(len(d["events"]) for d in got.datasets)
    track, discover = got.tables["track"], got.tables["discover"]
    assert track is not None
    assert discover is not None
    assert sorted(r[0] for r in track.rows) == [f"E-MTAB-{n}" for n in (1, 2, 3, 4, 6)]
    assert [r[0] for r in discover.rows] == ["E-GEOD-5"]


def test_the_filters_choose_the_datasets_of_the_tables_the_chart_and_the_histories(
    crawled: Consortium,
) -> None:
    published = made(crawled, flt=DATASET.filter(states=["published"]))
    assert {d["accession"] for d in published.datasets} == {"E-MTAB-1", "E-MTAB-3", "E-MTAB-6"}
    assert published.tables["discover"] is None  # no external dataset is published
    assert published.series.counts == {
        "incoming": (1, 0, 0, 0, 0),  # E-MTAB-1, before it moved
        "published": (2, 3, 3, 3, 3),
    }
    assert published.filters == [("state", "published")]
    loading = made(crawled, flt=DATASET.filter(stage="loading", problems="yes"))
    assert [d["accession"] for d in loading.datasets] == ["E-MTAB-4"]
    assert loading.filters == [("stage", "loading"), ("problems", "yes")]


# ---- who sees what ----------------------------------------------------------------------------
def test_a_non_member_sees_nothing_of_the_projects_datasets(crawled: Consortium) -> None:
    c = crawled
    for who in (c.outsider, c.requester):
        got = made(c, who)
        assert (got.datasets, got.counts, got.events) == ([], {}, 0)
        assert got.series.counts == {}
        track = got.tables["track"]
        assert track is not None
        assert track.rows == []
        page = dataset_overview.render_overview(got)
        assert "E-MTAB" not in page
        assert "E-GEOD" not in page
    with pytest.raises(NotFound, match="no project 'p1'"):  # not even that it exists
        made(c, c.outsider, flt=DATASET.filter(project="p1"))
    assert made(c, c.requester, flt=DATASET.filter(project="p1")).datasets == []
    assert len(made(c, c.admin).datasets) == 6


# ---- the file -----------------------------------------------------------------------------------
def embedded(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="overview-data">(.*?)</script>', page)
    assert found is not None
    loaded: dict[str, Any] = json.loads(found.group(1))
    return loaded


def test_the_cli_writes_the_page_whole_and_never_over_a_file_without_force(
    crawled: Consortium, cli: Cli, tmp_path: Path
) -> None:
    c = crawled
    path = tmp_path / "overview.html"
    done = cli("dataset", "overview", "-o", str(path), "--as", c.viewer, "--json")
    assert done.code == 0, done.err
    said = json.loads(done.out)
    assert (said["datasets"], said["every"]) == (6, "week")  # months of history by now
    assert said["counts"] == {"external": 1, "loading": 2, "published": 3}
    page = path.read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    assert "default-src 'none'" in html.unescape(csp.group(1))
    assert "connect-src 'none'" in html.unescape(csp.group(1))
    data = embedded(page)
    assert len(data["datasets"]) == 6
    assert [len(data["views"][v]["rows"]) for v in ("track", "discover")] == [5, 1]
    assert html.escape(c.viewer) in page
    assert not list(tmp_path.glob(".*.part"))

    again = cli("dataset", "overview", "-o", str(path), "--as", c.viewer, "--json")
    assert again.code == 2
    error = json.loads(again.out)["errors"][0]
    assert error["field"] == "output"
    assert error["accepted"] == "another name, or --force to replace it"
    assert path.read_text(encoding="utf-8") == page
    forced = cli(
        "dataset", "overview", "-o", str(path), "--force", "--state", "loading", "--every",
        "day", "--tz", "Europe/Helsinki", "--as", c.viewer,
    )  # fmt: skip
    assert forced.code == 0, forced.err
    assert "Wrote the overview of 2 dataset(s)" in forced.out
    page = path.read_text(encoding="utf-8")
    assert "Europe/Helsinki" in page
    assert "None: the state filter leaves no dataset in this view." in page  # discover

    for args, field in (
        (["-o", str(tmp_path / "no" / "such" / "folder.html")], "output"),
        (["-o", str(tmp_path / "x.html"), "--every", "month"], "every"),
        (["-o", str(tmp_path / "x.html"), "--stage", "ingest"], "stage"),
    ):
        bad = cli("dataset", "overview", *args, "--as", c.viewer, "--json")
        assert bad.code == 2, bad.out
        assert json.loads(bad.out)["errors"][0]["field"] == field
        assert "Traceback" not in bad.err
    assert not (tmp_path / "x.html").exists()
    refused = cli("dataset", "overview", "-o", str(tmp_path / "p.html"), "-p", "p1",
                  "--as", c.outsider)  # fmt: skip
    assert refused.code != 0
    assert "no project" in refused.err
    assert not (tmp_path / "p.html").exists()
