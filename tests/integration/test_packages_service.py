"""Packages through the services, on SQLite and PostgreSQL, with real files and real bags."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import bagit
import pytest
from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import Event, Package, PackageFile
from steward.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from steward.services import package_build, packages
from steward.services.packages import PackageFilter, PackageSpec
from steward.timeutil import utcnow
from tests.conftest import Consortium
from tests.packaging_data import Dataset, make_dataset


@pytest.fixture
def data(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "ds")


def _spec(data: Dataset, name: str = "cup-2026", **kw: object) -> PackageSpec:
    return PackageSpec(
        name=name, manifest=data.manifest, workflow_manifest=data.workflow_manifest, **kw
    )  # type: ignore[arg-type]


def _make(c: Consortium, settings: Settings, spec: PackageSpec) -> packages.PackageView:
    view, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
    return package_build.build(c.db, settings, actor=c.steward, package_id=view.id)


def test_create_and_build_a_valid_bag_with_report(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view = _make(consortium, settings, _spec(data))
    assert view.state == "built"
    assert view.file_count == 12  # 3 libraries × (2 FASTQ + BAM + VCF)
    assert view.total_size == sum(len(b) for b in data.files.values())
    bag = packages.bag_dir(settings, view.id)
    assert bagit.Bag(str(bag)).is_valid()
    assert (bag / "report.html").is_file()
    assert (bag / "ro-crate-metadata.json").is_file() or (
        bag / "data" / "ro-crate-metadata.json"
    ).is_file()
    laid_out = sorted(
        p.relative_to(bag / "data").as_posix()
        for p in (bag / "data").rglob("*")
        if p.is_file() and p.name != "ro-crate-metadata.json"
    )
    assert "PRJA/fastq/RUN1/L000/L000_R1.fastq.gz" in laid_out
    assert "PRJA/bam/WF000/L000/L000.bam" in laid_out
    report = packages.validate(
        consortium.db, settings, actor=consortium.viewer, package_id=view.id, full=True
    )
    assert report.problems == []
    assert report.files == 12
    with consortium.db.transaction() as s:
        types = list(
            s.scalars(select(Event.type).where(Event.subject_id == view.id).order_by(Event.seq))
        )
        hashed = s.scalar(
            select(func.count())
            .select_from(PackageFile)
            .where(PackageFile.package_id == view.id, PackageFile.sha256.is_not(None))
        )
    assert types == ["created", "build_started", "built"]
    assert view.version == 3  # one version per event: nothing else moved it
    assert hashed == 12
    detail = packages.get(consortium.db, settings, actor=consortium.viewer, package_id=view.id)
    assert detail.files_by_data_type == {"bam": 3, "fastq": 6, "vcf": 3}
    assert set(detail.time_in_state) == {"pending", "building", "built"}  # built: up to now
    assert "delete" not in detail.available_actions  # viewers see, staff act


def test_the_same_request_twice_gives_the_same_package(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    first = _make(consortium, settings, _spec(data))
    again, new = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data),
    )
    assert (again.id, new) == (first.id, False)
    assert (
        package_build.build(
            consortium.db, settings, actor=consortium.steward, package_id=first.id
        ).version
        == first.version
    )  # already built: nothing happens
    other = _spec(data, data_types=("fastq",))
    with pytest.raises(Conflict, match=r"belongs to .* holds different files"):
        packages.create(
            consortium.db,
            settings,
            actor=consortium.steward,
            project=consortium.project,
            spec=other,
        )
    with consortium.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Package)) == 1


def test_a_bad_manifest_writes_nothing_and_lists_every_problem(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    text = data.manifest.read_text().splitlines()
    text[1] = text[1].replace("fastq", "fastqq")
    text[2] = text[2].replace("runs/RUN1", "../../../etc")
    data.manifest.write_text("\n".join(text) + "\n")
    with pytest.raises(ValidationFailed) as err:
        packages.create(
            consortium.db,
            settings,
            actor=consortium.steward,
            project=consortium.project,
            spec=_spec(data),
        )
    rows = {d.row for d in err.value.details}
    assert {2, 3} <= rows
    with consortium.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Package)) == 0
        assert s.scalar(select(func.count()).select_from(PackageFile)) == 0


@pytest.mark.parametrize("name", ["has space", "../up", ".hidden", "a/b", "x" * 129, ""])
def test_package_names_are_checked(
    consortium: Consortium, settings: Settings, data: Dataset, name: str
) -> None:
    with pytest.raises(ValidationFailed, match="not valid") as err:
        packages.create(
            consortium.db,
            settings,
            actor=consortium.steward,
            project=consortium.project,
            spec=_spec(data, name=name),
        )
    assert err.value.details[0].field == "name"


def test_filters_choose_rows(consortium: Consortium, settings: Settings, data: Dataset) -> None:
    view, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data, data_types=("fastq",), projects=("PRJA",)),
    )
    assert view.file_count == 4  # libraries L000 and L002, two reads each
    with pytest.raises(ValidationFailed):
        packages.create(
            consortium.db,
            settings,
            actor=consortium.steward,
            project=consortium.project,
            spec=_spec(data, name="typo", samples=("S0000",)),
        )


def test_only_staff_create_and_requesters_see_nothing(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    for who in (consortium.requester, consortium.viewer, consortium.reviewer):
        with pytest.raises(Forbidden):
            packages.create(
                consortium.db, settings, actor=who, project=consortium.project, spec=_spec(data)
            )
    view, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data),
    )
    assert (
        packages.list_packages(consortium.db, actor=consortium.requester, flt=PackageFilter()) == []
    )
    for who in (consortium.requester, consortium.outsider):
        with pytest.raises(NotFound) as hidden:
            packages.get(consortium.db, settings, actor=who, package_id=view.id)
        # The same words as for an id that does not exist: no project, no owner.
        assert hidden.value.message == f"no package {view.id!r}"
        assert consortium.project not in str(hidden.value.as_problem())
        for command in ("comment", "abort"):
            with pytest.raises(NotFound):
                packages.act(
                    consortium.db, settings, actor=who, package_id=view.id, command=command,
                    reason="x",
                )  # fmt: skip


def test_list_filters_by_name_state_and_dates(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    built = _make(consortium, settings, _spec(data, name="alpha"))
    pending, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data, name="beta", data_types=("vcf",)),
    )

    def ids(**kw: object) -> list[str]:
        flt = PackageFilter(**kw)  # type: ignore[arg-type]
        return [
            v.id for v in packages.list_packages(consortium.db, actor=consortium.viewer, flt=flt)
        ]

    now = utcnow()
    assert ids() == [built.id, pending.id]
    assert ids(name="alp") == [built.id]
    assert ids(states=("pending",)) == [pending.id]
    assert ids(created_from=now - timedelta(hours=1), created_to=now + timedelta(hours=1)) == [
        built.id,
        pending.id,
    ]
    assert ids(created_from=now + timedelta(hours=1)) == []
    assert ids(created_to=now - timedelta(hours=1)) == []
    assert ids(completed_from=now - timedelta(hours=1)) == [built.id]
    assert ids(completed_to=now - timedelta(hours=1)) == []
    with pytest.raises(ValidationFailed, match="filters"):
        ids(states=("bogus",))
    with pytest.raises(ValidationFailed):
        ids(created_from=now, created_to=now - timedelta(days=1))


def test_delete_is_refused_while_building_and_abort_removes_partial_files(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data),
    )
    package_build._claim(consortium.db, actor=consortium.steward, package_id=view.id)
    partial = packages.bag_dir(settings, view.id)
    partial.mkdir(parents=True)
    (partial / "junk").write_text("half")
    with pytest.raises(InvalidTransition, match="building"):
        packages.act(
            consortium.db, settings, actor=consortium.steward, package_id=view.id, command="delete"
        )
    done = packages.act(
        consortium.db,
        settings,
        actor=consortium.steward,
        package_id=view.id,
        command="abort",
        reason="wrong cohort",
    )
    assert done.state == "aborted"
    assert done.failure_reason == "wrong cohort"
    assert not partial.exists()


def test_delete_removes_files_and_keeps_history(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view = _make(consortium, settings, _spec(data))
    done = packages.act(
        consortium.db, settings, actor=consortium.steward, package_id=view.id, command="delete"
    )
    assert done.state == "deleted"
    assert not packages.bag_dir(settings, view.id).exists()
    detail = packages.get(consortium.db, settings, actor=consortium.steward, package_id=view.id)
    assert [e.type for e in detail.timeline][-1] == "deleted"


def test_a_changed_source_fails_the_build_naming_the_file(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data),
    )
    victim = next(p for p in data.files if p.endswith("L001_R2.fastq.gz"))
    Path(victim).write_bytes(b"changed after the manifest was checked")
    with pytest.raises(ValidationFailed) as err:
        package_build.build(consortium.db, settings, actor=consortium.steward, package_id=view.id)
    assert "L001_R2.fastq.gz" in str(err.value) + " ".join(str(d) for d in err.value.details)
    detail = packages.get(consortium.db, settings, actor=consortium.steward, package_id=view.id)
    assert detail.package.state == "failed"
    assert "L001_R2.fastq.gz" in (detail.package.failure_reason or "")
    # put it back: retry continues the same package and succeeds
    Path(victim).write_bytes(data.files[victim])
    packages.act(
        consortium.db, settings, actor=consortium.steward, package_id=view.id, command="retry"
    )
    again = package_build.build(
        consortium.db, settings, actor=consortium.steward, package_id=view.id
    )
    assert again.state == "built"
    assert again.id == view.id


def test_a_failed_package_is_not_rebuilt_without_retry(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=_spec(data),
    )
    shutil.rmtree(data.root / "analysis")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the bag builder raises
        package_build.build(consortium.db, settings, actor=consortium.steward, package_id=view.id)
    with pytest.raises(InvalidTransition, match="retry"):
        package_build.build(consortium.db, settings, actor=consortium.steward, package_id=view.id)


def test_fetch_mode_makes_a_holey_bag(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view = _make(consortium, settings, _spec(data, mode="fetch"))
    bag = packages.bag_dir(settings, view.id)
    fetch = (bag / "fetch.txt").read_text().splitlines()
    assert len(fetch) == 12
    assert not any(p.is_file() for p in (bag / "data").rglob("*.fastq.gz"))
    report = packages.validate(
        consortium.db, settings, actor=consortium.steward, package_id=view.id, full=False
    )
    assert report.problems == []


def test_expire_due_removes_old_packages(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    view = _make(consortium, settings, _spec(data))
    assert view.keep_until is not None
    assert packages.expire_due(consortium.db, settings, actor=consortium.steward) == []
    later = view.keep_until + timedelta(seconds=1)
    assert packages.expire_due(consortium.db, settings, actor=consortium.steward, now=later) == [
        view.id
    ]
    assert not packages.bag_dir(settings, view.id).exists()
    assert packages.expire_due(consortium.db, settings, actor=consortium.steward, now=later) == []
