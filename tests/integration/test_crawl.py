"""The crawl with real parts: folder trees built here, a JSON endpoint on loopback, SQLite and
PostgreSQL; a crawl killed with SIGKILL in a real process.

The world: project p1 (the consortium fixture) fed by four folder sources — external,
incoming, loading (two folders: the same stage twice) and published — and the datasets in
them, with MAGE-TAB metadata written by hand from the spec.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from steward.config import Settings
from steward.crawl.config import CrawlConfig, parse_crawl_config
from steward.crawl.sources_fs import FolderSource
from steward.db.models import Crawl, CrawlListing, Dataset, DatasetFile, DatasetLocation, Event
from steward.db.session import Database
from steward.errors import Forbidden, ValidationFailed
from steward.services import access, crawl, datasets, subjects
from steward.services.crawl_summary import CrawlSummary
from tests.conftest import CliResult, Consortium
from tests.crawl_http import json_endpoint
from tests.crawl_trees import ACCESSION, dataset_files, write_tree

Cli = Callable[..., CliResult]
STAGES = ("external", "incoming", "loading", "loading-2", "published")


def sources(root: Path, *extra: dict[str, Any]) -> dict[str, Any]:
    """The crawl table: one folder source per stage folder under ``root``."""
    entries = [
        {
            "name": name,
            "project": "p1",
            "url": str(root / name),
            "stage": name.removesuffix("-2"),
            "pattern": ACCESSION,
            "extractors": ["mage-tab-idf", "mage-tab-sdrf"],
            "tech": ["rna-seq"] if name != "external" else [],
        }
        for name in STAGES
    ]
    return {"sources": [*entries, *extra]}


def config_of(root: Path, *extra: dict[str, Any]) -> CrawlConfig:
    return parse_crawl_config(sources(root, *extra))


def build(root: Path) -> None:
    for name in STAGES:
        (root / name).mkdir(parents=True, exist_ok=True)
    write_tree(root / "external", {"E-GEOD-5/E-GEOD-5.txt": "from GEO"})
    write_tree(root / "incoming", dataset_files("E-MTAB-1", "Liver", secondary=("GSE5",)))
    write_tree(root / "incoming", dataset_files("E-MTAB-2", "Brain", "Mus musculus"))
    write_tree(root / "loading", dataset_files("E-MTAB-2", "Brain", "Mus musculus"))
    write_tree(root / "loading", dataset_files("E-MTAB-4", "Heart"))
    write_tree(root / "loading-2", dataset_files("E-MTAB-4", "Heart"))
    write_tree(root / "published", dataset_files("E-MTAB-3", "Kidney", curator="Ada Lovelace"))
    write_tree(
        root / "published", {"E-MTAB-6/E-MTAB-6.idf.txt": b"Investigation Title\t\xff\xfe\n"}
    )


def run(c: Consortium, config: CrawlConfig, **kw: Any) -> CrawlSummary:
    return crawl.run_crawl(c.db, c.db.settings, actor=c.steward, config=config, **kw)


def states(c: Consortium) -> dict[str, str]:
    with c.db.read() as s:
        return {d.accession: d.state for d in s.scalars(select(Dataset))}


def events(db: Database) -> list[tuple[Any, ...]]:
    """Every dataset event as (accession, seq, type, from, to, data): all but times and ids."""
    with db.read() as s:
        names = {d.id: d.accession for d in s.scalars(select(Dataset))}
        rows = s.scalars(select(Event).where(Event.subject_kind == "dataset").order_by(Event.id))
        return sorted(
            (names[e.subject_id], e.seq, e.type, e.from_state, e.to_state, json.dumps(e.data))
            for e in rows
        )


def view(c: Consortium, accession: str) -> datasets.DatasetDetail:
    return datasets.detail(c.db, actor=c.steward, dataset=accession, files=None)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    build(root)
    return root


# ---- the first crawl --------------------------------------------------------------------------
def test_a_crawl_finds_each_dataset_in_its_highest_stage_with_metadata_and_problems(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    summary = run(c, config_of(tree))
    assert states(c) == {
        "E-GEOD-5": "external",
        "E-MTAB-1": "incoming",
        "E-MTAB-2": "loading",  # in incoming and loading: the higher stage wins
        "E-MTAB-3": "published",
        "E-MTAB-4": "loading",
        "E-MTAB-6": "published",
    }
    assert summary.status == "ok"
    assert summary.counts["new"].count == 6
    assert summary.events == 6  # one discovery each, in the stage it was found in
    assert [(e[2], e[3], e[4]) for e in events(c.db) if e[0] == "E-MTAB-2"] == [
        ("discovered", None, "loading")
    ]
    one = view(c, "E-MTAB-1").dataset
    assert (one.title, one.organism, one.curator) == ("Liver", ["Homo sapiens"], "Marie Curie")
    assert one.experiment_type == "RNA-seq of coding RNA"
    assert one.technologies == ["rna-seq"]
    assert one.secondary_accessions == ["GSE5"]
    # E-GEOD-5 is GSE5 (the default mapping), a secondary accession of E-MTAB-1, which is
    # further along: the external one is the duplicate
    geo = view(c, "E-GEOD-5").dataset
    assert geo.duplicate_of == "E-MTAB-1"
    assert one.duplicate_of is None
    assert {p["kind"] for p in one.problems} == {"duplicate"}
    heart = view(c, "E-MTAB-4")
    assert [p["kind"] for p in heart.dataset.problems] == ["duplicate-location"]
    assert len([x for x in heart.locations if x.present]) == 2
    broken = view(c, "E-MTAB-6").dataset
    assert [p["kind"] for p in broken.problems] == ["undecodable"]
    assert summary.counts["unreadable_files"].examples == [
        "E-MTAB-6: E-MTAB-6.idf.txt (undecodable)"
    ]
    assert summary.counts["duplicates"].count == 3
    # the durable per-file record
    two = view(c, "E-MTAB-2")
    assert {(f.source, f.path, f.outcome) for f in two.files} == {
        (src, f"E-MTAB-2/{name}", "present")
        for src in ("incoming", "loading")
        for name in ("E-MTAB-2.idf.txt", "E-MTAB-2.sdrf.txt", "raw/run1.fq")
    }
    with c.db.read() as s:
        row = s.get(Crawl, summary.id)
        assert row is not None
        assert row.status == "ok"
        assert row.summary["counts"]["new"]["count"] == 6
        assert {r.source for r in s.scalars(select(CrawlListing))} == set(STAGES)


def test_lists_filter_by_source_tech_organism_curator_duplicates_and_problems(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    run(c, config_of(tree))

    def listed(**values: str) -> set[str]:
        flt = datasets.DATASET.filter(**values)
        return {v.accession for v in subjects.list_(c.db, datasets.DATASET, actor=c.viewer,
                                                    flt=flt)}  # fmt: skip

    assert listed(source="loading-2") == {"E-MTAB-4"}
    assert listed(tech="rna-seq") == {"E-MTAB-1", "E-MTAB-2", "E-MTAB-3", "E-MTAB-4", "E-MTAB-6"}
    assert listed(tech="rna") == set()  # a whole tag, not part of one
    assert listed(organism="mus") == {"E-MTAB-2"}
    assert listed(curator="Lovelace") == {"E-MTAB-3"}
    assert listed(duplicates="yes") == {"E-GEOD-5"}
    assert listed(problems="yes") == {"E-GEOD-5", "E-MTAB-1", "E-MTAB-4", "E-MTAB-6"}
    assert listed(problems="no", accession="E-MTAB-2") == {"E-MTAB-2"}
    with pytest.raises(ValidationFailed) as err:
        subjects.list_(
            c.db, datasets.DATASET, actor=c.viewer, flt=datasets.DATASET.filter(duplicates="maybe")
        )
    assert err.value.details[0].accepted == "yes, no"
    # requesters and outsiders see none of the project's datasets
    for who in (c.requester, c.outsider):
        flt = datasets.DATASET.filter()
        assert subjects.list_(c.db, datasets.DATASET, actor=who, flt=flt) == []


def test_only_the_projects_staff_may_crawl_into_it_and_its_project_must_exist(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    with pytest.raises(Forbidden, match="steward or admin"):
        crawl.run_crawl(c.db, c.db.settings, actor=c.reviewer, config=config_of(tree))
    document = sources(tree)
    document["sources"][1]["project"] = "nope"
    with pytest.raises(ValidationFailed) as err:
        run(c, parse_crawl_config(document))
    assert err.value.details[0].field == "sources[1].project"
    assert states(c) == {}


# ---- what changes between crawls ---------------------------------------------------------------
def test_moves_vanishing_and_coming_back_are_events(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    c = consortium
    config = config_of(tree)
    run(c, config)
    before = set(events(c.db))
    shutil.move(tree / "incoming" / "E-MTAB-1", tree / "published" / "E-MTAB-1")
    shutil.rmtree(tree / "incoming" / "E-MTAB-2")
    shutil.rmtree(tree / "loading" / "E-MTAB-2")
    summary = run(c, config)
    assert states(c)["E-MTAB-1"] == "published"
    assert states(c)["E-MTAB-2"] == "missing"
    assert summary.counts["state_changes"].examples == ["E-MTAB-1: incoming → published"]
    assert summary.counts["missing"].examples == ["E-MTAB-2 (was loading)"]
    new = set(events(c.db)) - before
    assert {(e[0], e[2], e[3], e[4]) for e in new} == {
        ("E-MTAB-1", "location_removed", "incoming", "incoming"),
        ("E-MTAB-1", "location_added", "incoming", "incoming"),
        ("E-MTAB-1", "state_changed", "incoming", "published"),
        ("E-MTAB-2", "location_removed", "loading", "loading"),
        ("E-MTAB-2", "missing", "loading", "missing"),
    }
    missing = view(c, "E-MTAB-2")
    assert missing.dataset.missing_since is not None
    assert {f.outcome for f in missing.files} == {"removed"}  # the files' record outlives them
    assert not any(x.present for x in missing.locations)
    write_tree(tree / "loading", dataset_files("E-MTAB-2", "Brain", "Mus musculus"))
    summary = run(c, config)
    assert states(c)["E-MTAB-2"] == "loading"
    assert summary.counts["reappeared"].examples == ["E-MTAB-2 in loading"]
    assert view(c, "E-MTAB-2").dataset.missing_since is None
    # the history, with the time spent in each state
    result = cli("dataset", "history", "E-MTAB-2", "--as", c.steward, "--json")
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert [e["type"] for e in shown["timeline"]][-2:] == ["location_added", "reappeared"]
    assert next(e["type"] for e in shown["timeline"]) == "discovered"
    assert set(shown["time_in_state"]) == {"loading", "missing"}
    assert all(seconds >= 0 for seconds in shown["time_in_state"].values())
    table = cli("dataset", "history", "E-MTAB-2", "--as", c.steward)
    assert "time in each state" in table.out
    assert "missing" in table.out


def test_metadata_changes_are_events_with_old_and_new_values(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    config = config_of(tree)
    run(c, config)
    write_tree(tree / "published", dataset_files("E-MTAB-3", "Kidney, revised", "Rattus"))
    summary = run(c, config)
    assert summary.counts["metadata_changed"].count == 1
    last = [e for e in events(c.db) if e[0] == "E-MTAB-3"][-1]
    assert last[2] == "metadata_changed"
    changed = json.loads(last[5])["changed"]
    assert changed["title"] == {"old": "Kidney", "new": "Kidney, revised"}
    assert changed["organism"] == {"old": ["Homo sapiens"], "new": ["Rattus"]}
    assert view(c, "E-MTAB-3").dataset.organism == ["Rattus"]


def test_an_unchanged_recrawl_appends_nothing_and_reads_no_metadata_file(
    consortium: Consortium, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = consortium
    config = config_of(tree)
    run(c, config)
    before = events(c.db)
    with c.db.read() as s:
        seen_before = {f.path: f.last_seen_at for f in s.scalars(select(DatasetFile))}
    reads: list[str] = []
    real_read = FolderSource.read

    def counted(self: FolderSource, dataset: Any, file: Any, **kw: Any) -> bytes:
        reads.append(file.path)
        return real_read(self, dataset, file, **kw)

    monkeypatch.setattr(FolderSource, "read", counted)
    summary = run(c, config)
    assert reads == []
    assert summary.events == 0
    assert all(s.metadata_files_read == 0 for s in summary.sources)
    assert events(c.db) == before
    with c.db.read() as s:
        files = list(s.scalars(select(DatasetFile)))
        places = list(s.scalars(select(DatasetLocation).where(DatasetLocation.present)))
        found = list(s.scalars(select(Dataset).where(Dataset.state != "missing")))
    assert places
    assert all(p.last_seen_at >= summary.started_at for p in places)
    assert found
    assert all(d.last_seen_at and d.last_seen_at >= summary.started_at for d in found)
    # a file's seen-time is when it was last examined: folders that kept their times were
    # not looked into, so their files keep theirs — until a full crawl examines every file
    assert all(f.last_seen_at == seen_before[f.path] for f in files)
    full = run(c, config, full=True)
    assert full.events == 0
    with c.db.read() as s:
        files = list(s.scalars(select(DatasetFile).where(DatasetFile.outcome == "present")))
    assert files
    assert all(f.last_seen_at >= full.started_at for f in files)
    # a changed file is read again, and only its dataset's
    write_tree(tree / "incoming", {"E-MTAB-1/E-MTAB-1.idf.txt": "Investigation Title\tLiver 2\n"})
    run(c, config)
    assert reads
    assert all(path.startswith("E-MTAB-1.") for path in reads)  # below the dataset's folder


def _rewrite_in_place(path: Path, content: str) -> None:
    """New content under the same name with the folder's time kept (as an in-place edit
    leaves it: only adding, removing or renaming a file changes its folder's time)."""
    folder = path.parent.stat()
    path.write_text(content, encoding="utf-8")
    os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))


def test_a_recrawl_looks_into_changed_folders_and_at_metadata_files_and_full_at_everything(
    consortium: Consortium, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = consortium
    config = config_of(tree)
    run(c, config)
    examined: list[str] = []
    real_file = FolderSource._file

    def counted(self: FolderSource, t: Any, base: str, path: str, entry: Any) -> Any:
        examined.append(f"{base}/{path}")
        return real_file(self, t, base, path, entry)

    monkeypatch.setattr(FolderSource, "_file", counted)
    run(c, config)
    assert examined == []  # no folder changed: no data file examined one by one

    # a data file rewritten in place (same folder time): only a full crawl sees its new size
    data = tree / "incoming" / "E-MTAB-1" / "raw" / "run1.fq"
    _rewrite_in_place(data, "ACGTACGTACGT\n")

    def size_on_record() -> int:
        with c.db.read() as s:
            return s.scalars(
                select(DatasetFile.size).where(DatasetFile.path == "E-MTAB-1/raw/run1.fq")
            ).one()

    run(c, config)
    assert size_on_record() == 5
    run(c, config, full=True)
    assert size_on_record() == 13
    assert "E-MTAB-1/raw/run1.fq" in examined

    # an IDF edited in place is noticed by a quick crawl, and only its dataset is listed again
    examined.clear()
    idf = tree / "published" / "E-MTAB-3" / "E-MTAB-3.idf.txt"
    _rewrite_in_place(idf, idf.read_text(encoding="utf-8").replace("Kidney", "Kidney 2"))
    summary = run(c, config)
    assert summary.counts["metadata_changed"].count == 1
    assert view(c, "E-MTAB-3").dataset.title == "Kidney 2"
    assert examined
    assert all(p.startswith("E-MTAB-3/") for p in examined)

    # a file added to a sub-folder changes that folder's time: the dataset is listed again
    examined.clear()
    (tree / "loading" / "E-MTAB-4" / "raw" / "run2.fq").write_text("TT\n", encoding="utf-8")
    run(c, config)
    with c.db.read() as s:
        paths = set(s.scalars(select(DatasetFile.path).where(DatasetFile.source == "loading")))
    assert "E-MTAB-4/raw/run2.fq" in paths


def test_a_failing_source_leaves_its_datasets_unknown_and_the_others_complete(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    config = config_of(tree)
    run(c, config)
    before = events(c.db)
    (tree / "published").rename(tree / "published.away")  # the source cannot be listed
    write_tree(tree / "incoming", dataset_files("E-MTAB-7", "Lung"))
    summary = run(c, config)
    assert summary.status == "partial"
    assert summary.counts["failed_sources"].examples[0].startswith("published: failed")
    assert states(c)["E-MTAB-3"] == "published"  # unknown this crawl: never missing
    assert states(c)["E-MTAB-7"] == "incoming"  # the other sources completed
    assert {e[0] for e in events(c.db)} - {e[0] for e in before} == {"E-MTAB-7"}
    assert summary.counts["unknown"].count == 2  # E-MTAB-3 and E-MTAB-6
    assert summary.counts["missing"].count == 0
    (tree / "published.away").rename(tree / "published")
    again = run(c, config)
    assert again.status == "ok"
    assert again.events == 0


# ---- an interrupted crawl ----------------------------------------------------------------------
def _crawl_in_a_process(settings: Settings, path: Path, when: str) -> int:
    env = dict(
        os.environ,
        STEWARD_HOME=str(settings.home),
        STEWARD_DATABASE_URL=settings.resolved_database_url,
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.crawl_kill", str(path), "sam", "1", when],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode


def _second_database(consortium: Consortium, tmp_path: Path, backend: str) -> Database:
    """Another database with the same people and project, for the uninterrupted crawl."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'clean.db'}"
    else:
        from tests import pg

        base = consortium.db.settings.resolved_database_url.rsplit("/", 1)[0]
        url = pg.create_database(base, f"clean{os.getpid()}_{tmp_path.name[-8:]}".lower())
    db = Database(Settings(home=tmp_path / "clean", database_url=url))
    db.migrate()
    access.bootstrap_admin(db, user_id="admin")
    access.add_user(db, actor="admin", user_id="sam")
    access.create_project(db, actor="admin", project_id="p1")
    access.add_member(db, actor="admin", project_id="p1", user_id="sam", role="steward")
    return db


def _world(db: Database) -> dict[str, Any]:
    """Everything a crawl leaves but times and ids."""
    with db.read() as s:
        names = {d.id: d.accession for d in s.scalars(select(Dataset))}
        return {
            "datasets": sorted(
                (d.accession, d.state, d.version, json.dumps(d.problems), d.duplicate_of)
                for d in s.scalars(select(Dataset))
            ),
            "places": sorted(
                (names[p.dataset_id], p.source, p.key, p.present, p.digest)
                for p in s.scalars(select(DatasetLocation))
            ),
            "files": sorted(
                (names[f.dataset_id], f.source, f.path, f.outcome)
                for f in s.scalars(select(DatasetFile))
            ),
            "listings": sorted(
                (r.source, json.dumps(r.state, sort_keys=True))
                for r in s.scalars(select(CrawlListing))
            ),
        }


@pytest.mark.parametrize("kill_at", ["commit:1", "commit:3", "commit:all"])
def test_a_crawl_killed_midway_and_run_again_ends_as_one_uninterrupted_crawl(
    consortium: Consortium, tree: Path, tmp_path: Path, backend: str, kill_at: str
) -> None:
    """SIGKILL after the first, the third and the last dataset's transaction (before the
    listing states are saved): the re-run appends exactly the events one crawl would have."""
    c = consortium
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(sources(tree)))
    clean = _second_database(c, tmp_path, backend)
    try:
        config = config_of(tree)
        for db in (c.db, clean):
            crawl.run_crawl(db, db.settings, actor="sam", config=config)
        # Seven datasets change: moves, a removal, a new one, new metadata.
        shutil.move(tree / "incoming" / "E-MTAB-1", tree / "loading" / "E-MTAB-1")
        shutil.rmtree(tree / "published" / "E-MTAB-3")
        shutil.rmtree(tree / "loading-2" / "E-MTAB-4")
        shutil.rmtree(tree / "incoming" / "E-MTAB-2")
        write_tree(tree / "published", dataset_files("E-MTAB-2", "Brain 2", "Mus musculus"))
        write_tree(tree / "incoming", dataset_files("E-MTAB-8", "Skin", secondary=("GSE5",)))
        write_tree(tree / "external", {"E-GEOD-5/more.txt": "x"})
        assert _crawl_in_a_process(c.db.settings, path, kill_at) == -9
        with c.db.read() as s:
            interrupted = s.scalars(select(Crawl).where(Crawl.status == "running")).all()
        assert len(interrupted) == 1
        partial = events(c.db)
        assert _crawl_in_a_process(c.db.settings, path, "never") == 0
        crawl.run_crawl(clean, clean.settings, actor="sam", config=config)
        assert events(c.db) == events(clean)
        assert set(partial) <= set(events(c.db))
        assert (len(partial) < len(events(c.db))) == (kill_at != "commit:all")
        assert _world(c.db) == _world(clean)
        with c.db.read() as s:
            statuses = sorted(r.status for r in s.scalars(select(Crawl)))
        assert statuses == ["interrupted", "ok", "ok"]
    finally:
        clean.dispose()


# ---- secrets, the endpoint source, the CLI ---------------------------------------------------
TOKEN = "stwsecret-Zq8vN3xL0pRt5yW2mK7d"


def test_no_secret_reaches_events_summaries_places_or_the_cli(
    consortium: Consortium, tree: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    c = consortium
    with json_endpoint() as api:
        api.page(
            "/datasets?page=1",
            {
                "items": [{"accession": "E-MTAB-9", "title": "From the archive"}],
                "next": "/datasets?page=2",
            },
        )
        api.fail["/datasets?page=2"] = [500, 500, 500]
        endpoint = {
            "name": "archive",
            "project": "p1",
            "url": f"{api.url}/datasets?page=1",
            "stage": "external",
            "pattern": ACCESSION,
            "token_env": "ARCHIVE_TOKEN",
            "pagination": {"style": "link", "next_field": "next"},
            "retries": 1,
        }
        path = tmp_path / "sources.yaml"
        import yaml

        path.write_text(yaml.safe_dump(sources(tree, endpoint)))
        monkeypatch.setenv("ARCHIVE_TOKEN", TOKEN)
        result = cli("crawl", "--sources", str(path), "--as", c.steward, "--json")
        assert result.code == 0, result.err
        assert any(TOKEN in h.get("Authorization", "") for _, h in api.requests)  # it was used
    summary = json.loads(result.out)
    assert summary["status"] == "partial"  # the endpoint's second page kept failing
    assert states(c)["E-MTAB-9"] == "external"
    shown = cli("crawl", "show", summary["id"], "--as", c.steward)
    listed = cli("crawl", "list", "--as", c.steward)
    detail = cli("dataset", "show", "E-MTAB-9", "--as", c.steward, "--json")
    with c.db.read() as s:
        stored = [
            json.dumps([e.data for e in s.scalars(select(Event))]),
            json.dumps([r.summary for r in s.scalars(select(Crawl))]),
            json.dumps([(p.location, p.fields, p.problems) for p in
                        s.scalars(select(DatasetLocation))]),
            json.dumps([r.state for r in s.scalars(select(CrawlListing))]),
        ]  # fmt: skip
    for text in (*stored, result.out, result.err, shown.out, listed.out, detail.out):
        assert TOKEN not in text
    assert json.loads(detail.out)["dataset"]["title"] == "From the archive"


def test_the_crawl_commands_show_tables_and_json(
    consortium: Consortium, tree: Path, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    path = tmp_path / "sources.toml"
    lines = []
    for entry in sources(tree)["sources"]:
        lines.append("[[sources]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    dry = cli("crawl", "--sources", str(path), "--dry-run", "--as", c.steward, "--json")
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["counts"]["new"]["count"] == 6
    assert json.loads(dry.out)["events"] == 6  # that would be appended
    assert states(c) == {}  # a dry run writes nothing
    table = cli("crawl", "--sources", str(path), "--as", c.steward)
    assert table.code == 0, table.err
    assert "what changed" in table.out
    assert "E-GEOD-5 in external" in table.out
    assert "datasets/s" in table.out
    crawls = json.loads(cli("crawl", "list", "--as", c.steward, "--json").out)
    assert [r["new"] for r in crawls] == [6]
    shown = json.loads(cli("crawl", "show", crawls[0]["id"], "--as", c.steward, "--json").out)
    assert shown["counts"]["new"]["count"] == 6
    checks = cli("crawl", "sources", "--sources", str(path), "--json")
    assert [x["status"] for x in json.loads(checks.out)] == ["reachable"] * len(STAGES)
    listed = json.loads(
        cli("dataset", "list", "--state", "loading", "--problems", "--as", c.viewer, "--json").out
    )
    assert [d["accession"] for d in listed] == ["E-MTAB-4"]
    show = cli("dataset", "show", "E-MTAB-4", "--as", c.viewer)
    assert show.code == 0, show.err
    assert "duplicate-location" in show.out
    assert "loading-2" in show.out
    assert "E-MTAB-4/raw/run1.fq" in show.out
    note = cli("dataset", "comment", "E-MTAB-4", "checked by hand", "--as", c.viewer)
    assert note.code == 0, note.err
    refused = cli("dataset", "show", "E-MTAB-4", "--as", c.requester)
    assert refused.code != 0
    assert "no dataset" in refused.err
    (tree / "incoming" / "unreadable").mkdir()
    missing_project = tmp_path / "bad.json"
    missing_project.write_text(
        json.dumps({"sources": [{"url": str(tree), "stage": "loading", "pattern": "^E-"}]})
    )
    bad = cli("crawl", "--sources", str(missing_project), "--as", c.steward, "--json")
    assert bad.code == 2
    assert json.loads(bad.out)["errors"][0]["field"] == "sources[0].project"


def test_a_dataset_untouched_by_a_recrawl_still_gains_and_loses_its_duplicates(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    """A re-crawl plans only the datasets that changed — but one that did not change is
    planned after all when another now shares an accession with it, or no longer does: the
    result is the one a first crawl of the same tree gives."""
    c = consortium
    geo = tree / "external" / "E-GEOD-5"
    shutil.move(geo, tree.parent / "E-GEOD-5")  # not there at first
    config = config_of(tree)
    run(c, config)
    assert view(c, "E-MTAB-1").dataset.problems == []
    shutil.move(tree.parent / "E-GEOD-5", geo)  # E-GEOD-5 is GSE5, E-MTAB-1's secondary
    summary = run(c, config)
    assert summary.counts["new"].count == 1
    one = view(c, "E-MTAB-1").dataset
    assert [(p["kind"], p["other"]) for p in one.problems] == [("duplicate", "E-GEOD-5")]
    assert view(c, "E-GEOD-5").dataset.duplicate_of == "E-MTAB-1"
    shutil.rmtree(geo)  # gone: missing, still its duplicate; withdrawn, no longer
    run(c, config)
    assert [p["other"] for p in view(c, "E-MTAB-1").dataset.problems] == ["E-GEOD-5"]
    assert cli("dataset", "withdraw", "E-GEOD-5", "--as", c.steward).code == 0
    run(c, config)  # E-MTAB-1, untouched itself, loses the problem
    assert view(c, "E-MTAB-1").dataset.problems == []
