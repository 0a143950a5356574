"""The dataset tracker's views and exports with real parts: folder trees crawled into SQLite and
PostgreSQL, files written and opened again (CSV, JSON, XLSX through openpyxl), SeaweedFS for the
``s3://`` export and a real API server for ``--server``.

The world is test_crawl's: E-GEOD-5 external (GSE5 by the default mapping, a secondary
accession of E-MTAB-1, incoming), E-MTAB-2 loading and still in incoming, E-MTAB-4 in two
loading folders, E-MTAB-3 and E-MTAB-6 published; plus E-GEOD-77, external and ingested
nowhere.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from steward.adapters.storage import open_store
from steward.config import Settings
from steward.errors import NotFound, StewardError, ValidationFailed
from steward.services import dataset_views, datasets, subjects, tokens
from tests import s3
from tests.api_server import serving
from tests.conftest import CliResult, Consortium
from tests.crawl_trees import write_tree
from tests.integration.test_crawl import build, config_of, run

Cli = Callable[..., CliResult]


@pytest.fixture
def crawled(consortium: Consortium, tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    build(root)
    write_tree(root / "external", {"E-GEOD-77/E-GEOD-77.txt": "from GEO, not loaded"})
    run(consortium, config_of(root))
    return root


def _accessions(table: Any) -> list[str]:
    return [row[0] for row in table.rows]


def _records(table: Any) -> dict[str, dict[str, Any]]:
    names = [c.name for c in table.columns]
    return {row[0]: dict(zip(names, row, strict=True)) for row in table.rows}


# ---- --stage ----------------------------------------------------------------------------------
def test_stage_is_where_a_dataset_is_found_and_state_the_stage_that_won(
    consortium: Consortium, crawled: Path, cli: Cli
) -> None:
    c = consortium

    def listed(**values: Any) -> set[str]:
        flt = datasets.DATASET.filter(**values)
        found = subjects.list_(c.db, datasets.DATASET, actor=c.viewer, flt=flt)
        return {v.accession for v in found}

    assert listed(stage="incoming") == {"E-MTAB-1", "E-MTAB-2"}  # E-MTAB-2 is loading too
    assert listed(states=["incoming"]) == {"E-MTAB-1"}
    assert listed(stage="loading") == {"E-MTAB-2", "E-MTAB-4"}
    assert listed(stage="external") == {"E-GEOD-5", "E-GEOD-77"}
    assert listed(stage="analysing") == set()
    out = cli("dataset", "list", "--stage", "Incoming", "--as", c.viewer, "--json")
    assert out.code == 0, out.err
    assert {d["accession"] for d in json.loads(out.out)} == {"E-MTAB-1", "E-MTAB-2"}
    bad = cli("dataset", "list", "--stage", "ingest", "--as", c.viewer, "--json")
    assert bad.code == 2
    problem = json.loads(bad.out)["errors"][0]
    assert problem["field"] == "stage"
    assert problem["value"] == "ingest"
    assert "loading" in problem["accepted"]


def test_a_place_no_longer_there_is_not_a_stage_it_is_found_in(
    consortium: Consortium, crawled: Path
) -> None:
    c = consortium
    shutil.rmtree(crawled / "incoming" / "E-MTAB-2")
    run(c, config_of(crawled))
    flt = datasets.DATASET.filter(stage="incoming")
    assert [
        v.accession for v in subjects.list_(c.db, datasets.DATASET, actor=c.viewer, flt=flt)
    ] == ["E-MTAB-1"]


# ---- the views --------------------------------------------------------------------------------
def test_track_holds_every_ingested_dataset_with_where_it_is_found(
    consortium: Consortium, crawled: Path
) -> None:
    c = consortium
    shutil.rmtree(crawled / "published" / "E-MTAB-3")
    run(c, config_of(crawled))  # E-MTAB-3 is missing now: still tracked
    flt = datasets.DATASET.filter()
    table = dataset_views.view_table(c.db, actor=c.viewer, view="track", flt=flt)
    rows = _records(table)
    assert set(rows) == {"E-MTAB-1", "E-MTAB-2", "E-MTAB-3", "E-MTAB-4", "E-MTAB-6"}
    assert rows["E-MTAB-2"]["found_in"] == [
        f"incoming: {crawled / 'incoming' / 'E-MTAB-2'}",
        f"loading: {crawled / 'loading' / 'E-MTAB-2'}",
    ]
    assert rows["E-MTAB-4"]["found_in"] == sorted(
        f"loading: {crawled / folder / 'E-MTAB-4'}" for folder in ("loading", "loading-2")
    )
    assert rows["E-MTAB-3"]["state"] == "missing"
    assert rows["E-MTAB-3"]["found_in"] == []
    assert rows["E-MTAB-3"]["missing_since"] is not None
    assert rows["E-MTAB-1"]["curator"] == "Marie Curie"
    assert rows["E-MTAB-4"]["problems"] == 1
    # the list's filters apply inside the view
    only = datasets.DATASET.filter(states=["loading"], stage="incoming")
    narrowed = dataset_views.view_table(c.db, actor=c.viewer, view="track", flt=only)
    assert _accessions(narrowed) == ["E-MTAB-2"]
    with pytest.raises(ValidationFailed) as err:
        dataset_views.view_table(
            c.db, actor=c.viewer, view="track", flt=datasets.DATASET.filter(states=["external"])
        )
    assert err.value.details[0].field == "state"
    assert "loading" in (err.value.details[0].accepted or "")
    # nobody outside the project sees a row
    assert dataset_views.view_table(c.db, actor=c.requester, view="track", flt=flt).rows == []


def test_discover_holds_the_external_datasets_and_what_is_already_ingested(
    consortium: Consortium, crawled: Path
) -> None:
    c = consortium
    flt = datasets.DATASET.filter()
    table = dataset_views.view_table(c.db, actor=c.viewer, view="discover", flt=flt)
    rows = _records(table)
    assert set(rows) == {"E-GEOD-5", "E-GEOD-77"}
    # E-GEOD-5 is GSE5, written as E-MTAB-1's secondary accession
    assert rows["E-GEOD-5"]["already_ingested"] == ["E-MTAB-1 (incoming)"]
    assert rows["E-GEOD-77"]["already_ingested"] == []
    assert rows["E-GEOD-5"]["found_in"] == [f"external: {crawled / 'external' / 'E-GEOD-5'}"]
    # a site's own mapping (steward.toml's [crawl] accession_mappings) is the one used
    settings = Settings(
        home=c.db.settings.home,
        database_url=c.db.settings.database_url,
        crawl={"accession_mappings": [{"left": "E-GEOD-{n}", "right": "E-MTAB-{n}"}]},
    )
    mappings = dataset_views.configured_mappings(settings)
    mapped = _records(
        dataset_views.view_table(c.db, actor=c.viewer, view="discover", flt=flt, mappings=mappings)
    )
    assert mapped["E-GEOD-5"]["already_ingested"] == []  # GSE5 is not a form any more
    write_tree(crawled / "external", {"E-GEOD-3/E-GEOD-3.txt": "from GEO"})
    run(c, config_of(crawled))
    mapped = _records(
        dataset_views.view_table(c.db, actor=c.viewer, view="discover", flt=flt, mappings=mappings)
    )
    assert mapped["E-GEOD-3"]["already_ingested"] == ["E-MTAB-3 (published)"]
    shutil.rmtree(crawled / "published" / "E-MTAB-3")
    run(c, config_of(crawled))  # E-MTAB-3 is missing: gone from every place, not ingested
    mapped = _records(
        dataset_views.view_table(c.db, actor=c.viewer, view="discover", flt=flt, mappings=mappings)
    )
    assert mapped["E-GEOD-3"]["already_ingested"] == []
    # a dataset of another project is not this one's
    assert dataset_views.view_table(c.db, actor=c.outsider, view="discover", flt=flt).rows == []
    with pytest.raises(ValidationFailed) as err:
        dataset_views.configured_mappings(
            Settings(home=c.db.settings.home, crawl={"accession_mappings": [{"left": "A{n}"}]})
        )
    assert "accession_mappings" in (err.value.details[0].field or "")


# ---- formats and files ------------------------------------------------------------------------
def test_list_formats_on_screen_and_in_files(
    consortium: Consortium, crawled: Path, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    plain = cli("dataset", "list", "--as", c.viewer)
    assert plain.code == 0, plain.err
    assert "duplicate of" in plain.out  # the plain list as it was
    assert "found in" not in plain.out
    out = cli("dataset", "list", "--view", "track", "-f", "csv", "--as", c.viewer)
    assert out.code == 0, out.err
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert {r["accession"] for r in rows} == {"E-MTAB-1", "E-MTAB-2", "E-MTAB-3", "E-MTAB-4",
                                               "E-MTAB-6"}  # fmt: skip
    two = next(r for r in rows if r["accession"] == "E-MTAB-2")
    assert two["found_in"].split("; ") == [
        f"incoming: {crawled / 'incoming' / 'E-MTAB-2'}",
        f"loading: {crawled / 'loading' / 'E-MTAB-2'}",
    ]
    listed = cli("dataset", "list", "--view", "discover", "-f", "json", "--as", c.viewer)
    assert listed.code == 0, listed.err
    records = {r["accession"]: r for r in json.loads(listed.out)}
    assert records["E-GEOD-5"]["already_ingested"] == ["E-MTAB-1 (incoming)"]
    screen = cli("dataset", "list", "--view", "discover", "--as", c.viewer)
    assert "already ingested" in screen.out
    assert "E-MTAB-1 (incoming)" in screen.out
    # xlsx needs a file, and a file is never replaced without --force
    refused = cli("dataset", "list", "-f", "xlsx", "--as", c.viewer)
    assert refused.code == 2
    assert "--output" in refused.err
    target = tmp_path / "out" / "track.xlsx"
    target.parent.mkdir()
    wrote = cli("dataset", "list", "--view", "track", "-f", "xlsx", "-o", str(target),
                "--as", c.viewer)  # fmt: skip
    assert wrote.code == 0, wrote.err
    sheet = load_workbook(target, read_only=True).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0][:5] == ["accession", "project", "state", "since", "found_in"]
    assert sorted(r[0] for r in cells[1:]) == ["E-MTAB-1", "E-MTAB-2", "E-MTAB-3", "E-MTAB-4",
                                                "E-MTAB-6"]  # fmt: skip
    before = target.read_bytes()
    again = cli("dataset", "list", "--view", "discover", "-f", "xlsx", "-o", str(target),
                "--as", c.viewer)  # fmt: skip
    assert again.code == 2
    assert "already exists" in again.err
    assert target.read_bytes() == before
    forced = cli("dataset", "list", "--view", "discover", "-f", "xlsx", "-o", str(target),
                 "--force", "--as", c.viewer)  # fmt: skip
    assert forced.code == 0, forced.err
    sheet = load_workbook(target, read_only=True).active
    assert sheet is not None
    assert sorted(r[0] for r in list(sheet.iter_rows(values_only=True))[1:]) == [
        "E-GEOD-5",
        "E-GEOD-77",
    ]
    assert os.listdir(target.parent) == ["track.xlsx"]  # no temporary file left behind
    unknown = cli("dataset", "list", "--view", "ingest", "--as", c.viewer, "--json")
    assert unknown.code == 2
    assert json.loads(unknown.out)["errors"][0]["accepted"] == "track, discover"
    wrong = cli("dataset", "list", "--view", "discover", "--state", "loading", "--as", c.viewer)
    assert wrong.code == 2
    assert "external" in wrong.err


def test_export_writes_a_new_file_in_the_format_its_name_says(
    consortium: Consortium, crawled: Path, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    target = tmp_path / "discover.csv"
    done = cli("dataset", "export", "--view", "discover", "--to", str(target), "--as", c.viewer)
    assert done.code == 0, done.err
    assert "Wrote 2 dataset(s)" in done.out
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert [(r["accession"], r["already_ingested"]) for r in rows] == [
        ("E-GEOD-5", "E-MTAB-1 (incoming)"),
        ("E-GEOD-77", ""),
    ]
    json_target = tmp_path / "all.data"
    as_json = cli("dataset", "export", "--to", str(json_target), "-f", "json", "--stage",
                  "loading", "--as", c.viewer, "--json")  # fmt: skip
    assert as_json.code == 0, as_json.err
    assert json.loads(as_json.out) == {"rows": 2, "to": str(json_target), "format": "json"}
    assert {r["accession"] for r in json.loads(json_target.read_text())} == {
        "E-MTAB-2",
        "E-MTAB-4",
    }
    unknown = cli("dataset", "export", "--to", str(tmp_path / "x.ods"), "--as", c.viewer)
    assert unknown.code == 2
    assert "--format" in unknown.err
    assert not (tmp_path / "x.ods").exists()
    kept = cli("dataset", "export", "--to", str(target), "--as", c.viewer)
    assert kept.code == 2
    assert "already exists" in kept.err
    no_folder = cli("dataset", "export", "--to", str(tmp_path / "nope" / "a.csv"), "--as", c.viewer)
    assert no_folder.code == 2
    assert "does not exist" in no_folder.err
    ftp = cli("dataset", "export", "--to", "ftp://host/a.csv", "--as", c.viewer)
    assert ftp.code == 2
    assert "s3://" in ftp.err


# ---- S3 -----------------------------------------------------------------------------------------
@pytest.fixture
def aws_env(seaweedfs: s3.SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> s3.SeaweedFS:
    """The standard AWS variables, as a team's shell would have them (no endpoint: the
    command names it)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STEWARD_S3_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_REGION", seaweedfs.region)
    return seaweedfs


def test_export_to_s3_puts_the_whole_sheet_and_never_replaces_one_unasked(
    consortium: Consortium, crawled: Path, cli: Cli, aws_env: s3.SeaweedFS, s3_bucket: str
) -> None:
    c = consortium
    server = aws_env
    where = f"s3://{s3_bucket}/team/overview.xlsx"
    args = ("dataset", "export", "--to", where, "--endpoint-url", server.endpoint, "--as", c.viewer)
    done = cli(*args, "--view", "track")
    assert done.code == 0, done.err
    assert where in done.out
    store = open_store(f"s3://{s3_bucket}", server.config())
    assert [o.key for o in store.list()] == ["team/overview.xlsx"]  # one object, no parts left

    def sheet() -> list[str]:
        book = load_workbook(io.BytesIO(store.read("team/overview.xlsx")), read_only=True)
        assert book.active is not None
        return sorted(str(r[0]) for r in list(book.active.iter_rows(values_only=True))[1:])

    assert sheet() == ["E-MTAB-1", "E-MTAB-2", "E-MTAB-3", "E-MTAB-4", "E-MTAB-6"]
    kept = cli(*args, "--view", "discover", "--json")
    assert kept.code == 2
    assert json.loads(kept.out)["errors"][0]["value"] == where
    assert sheet() == ["E-MTAB-1", "E-MTAB-2", "E-MTAB-3", "E-MTAB-4", "E-MTAB-6"]
    replaced = cli(*args, "--view", "discover", "--force")
    assert replaced.code == 0, replaced.err
    assert sheet() == ["E-GEOD-5", "E-GEOD-77"]
    for result in (done, kept, replaced):
        assert server.secret_key not in result.out + result.err
    missing = cli("dataset", "export", "--to", f"s3://{s3_bucket}-gone/a.csv", "--endpoint-url",
                  server.endpoint, "--as", c.viewer)  # fmt: skip
    assert missing.code == 1
    assert f"{s3_bucket}-gone" in missing.err
    assert server.secret_key not in missing.err
    no_key = cli("dataset", "export", "--to", f"s3://{s3_bucket}/", "-f", "csv", "--as", c.viewer)
    assert no_key.code == 2
    assert "object key" in no_key.err


def test_a_refused_s3_key_fails_the_export_and_leaves_nothing(
    consortium: Consortium, crawled: Path, aws_env: s3.SeaweedFS, s3_bucket: str
) -> None:
    c = consortium
    server = aws_env
    table = dataset_views.view_table(
        c.db, actor=c.viewer, view="track", flt=datasets.DATASET.filter()
    )
    readonly = Settings(
        home=c.db.settings.home,
        s3_access_key_id=server.read_access_key,
        s3_secret_access_key=server.read_secret_key,  # type: ignore[arg-type]
    )
    with pytest.raises(StewardError) as err:
        dataset_views.export(
            table,
            f"s3://{s3_bucket}/t.csv",
            fmt="csv",
            tz=ZoneInfo("UTC"),
            settings=readonly,
            endpoint_url=server.endpoint,
        )
    assert server.read_secret_key not in str(err.value)
    assert list(open_store(f"s3://{s3_bucket}", server.config()).list()) == []
    with pytest.raises(NotFound):
        open_store(f"s3://{s3_bucket}", server.config()).stat("t.csv")


# ---- against a server ---------------------------------------------------------------------------
@pytest.fixture
def api(settings: Settings, consortium: Consortium) -> Iterator[str]:
    with serving(settings) as url:
        yield url


def test_filters_formats_and_views_work_through_the_api(
    consortium: Consortium, crawled: Path, cli: Cli, api: str, tmp_path: Path
) -> None:
    c = consortium
    token = tokens.create(c.db, actor=c.viewer, scope="read", expires_in=timedelta(hours=1))
    remote = ("--server", api, "--token", token.secret)
    here = cli("--as", c.viewer, "dataset", "list", "--stage", "incoming", "-f", "csv")
    there = cli(*remote, "dataset", "list", "--stage", "incoming", "-f", "csv")
    assert here.code == there.code == 0, there.err
    assert here.out == there.out
    assert {r["accession"] for r in csv.DictReader(io.StringIO(there.out))} == {
        "E-MTAB-1",
        "E-MTAB-2",
    }
    target = tmp_path / "remote.xlsx"
    wrote = cli(*remote, "dataset", "export", "--to", str(target), "--stage", "loading")
    assert wrote.code == 0, wrote.err
    sheet = load_workbook(target, read_only=True).active
    assert sheet is not None
    assert sorted(r[0] for r in list(sheet.iter_rows(values_only=True))[1:]) == [
        "E-MTAB-2",
        "E-MTAB-4",
    ]
    # the views both ways: tests/integration/test_cli_remote_dataset_tracker.py
    view = cli(*remote, "dataset", "list", "--view", "track")
    assert view.code == 0, view.err
