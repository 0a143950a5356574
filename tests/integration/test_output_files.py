"""Files written where a person says: ``report … --output`` and the one helper behind it.

A folder or an unwritable place as ``--output`` once gave a traceback, a missing folder was
created silently, an existing file replaced without asking, and every file came out 0600
whatever the umask. Now: a clear message (exit 2), nothing created, ``--force`` to replace,
the umask's mode for reports and an exact private mode for files holding secrets.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steward.config import Settings
from steward.errors import StewardError, ValidationFailed
from steward.outfiles import PRIVATE, PRIVATE_SCRIPT, open_output, write_output
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def report(cli: Cli, *args: str) -> CliResult:
    return cli("--as", "sam", "report", "tracking", *args)


def test_a_folder_as_output_is_refused_with_exit_2(
    cli: Cli, consortium: Consortium, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    r = report(cli, "-o", str(folder))
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err
    assert "internal error" not in r.err
    assert str(folder) in r.err
    assert "is a folder" in r.err
    assert list(folder.iterdir()) == []
    r = report(cli, "-o", str(folder), "--force")  # --force never replaces a folder
    assert r.code == 2
    assert folder.is_dir()


def test_an_unwritable_place_is_refused_with_exit_2(
    cli: Cli, consortium: Consortium, tmp_path: Path
) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    for where in (a_file / "t.csv", Path("/sys/steward-report.csv")):
        r = report(cli, "-o", str(where))
        assert r.code == 2, (where, r.out + r.err)
        assert "Traceback" not in r.err
        assert "internal error" not in r.err
        assert str(where) in r.err


def test_json_mode_gives_the_problem_as_json(
    cli: Cli, consortium: Consortium, tmp_path: Path
) -> None:
    r = cli("--as", "sam", "--json", "report", "tracking", "-o", str(tmp_path))
    assert r.code == 2
    problem = json.loads(r.out or r.err)
    assert problem["code"] == "validation-failed"
    assert problem["errors"][0]["field"] == "output"
    assert problem["errors"][0]["value"] == str(tmp_path)


def test_missing_folders_are_not_created(cli: Cli, consortium: Consortium, tmp_path: Path) -> None:
    target = tmp_path / "typo" / "deep" / "t.csv"
    r = report(cli, "-o", str(target))
    assert r.code == 2, r.out + r.err
    assert f"the folder {target.parent} does not exist" in r.err
    assert not (tmp_path / "typo").exists()


def test_an_existing_file_is_kept_unless_forced(
    cli: Cli, consortium: Consortium, tmp_path: Path
) -> None:
    target = tmp_path / "t.csv"
    target.write_text("last week's report")
    r = report(cli, "-f", "csv", "-o", str(target))
    assert r.code == 2, r.out + r.err
    assert "already exists" in r.err
    assert "--force" in r.err
    assert target.read_text() == "last week's report"
    r = report(cli, "-f", "csv", "-o", str(target), "--force")
    assert r.code == 0, r.out + r.err
    assert target.read_text().startswith("request,")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".t.csv")) == []


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_reports_follow_the_umask(
    cli: Cli,
    consortium: Consortium,
    tmp_path: Path,
    umask: Callable[[int], None],
    fmt: str,
    mask: int,
    expected: int,
) -> None:
    umask(mask)
    target = tmp_path / f"t.{fmt}"
    r = report(cli, "-f", fmt, "-o", str(target))
    assert r.code == 0, r.out + r.err
    assert mode_of(target) == expected


def test_a_report_is_not_written_into_a_bag(
    cli: Cli, consortium: Consortium, settings: Settings
) -> None:
    bag = settings.resolved_packages_dir / "pkg_X"
    bag.mkdir(parents=True)
    r = report(cli, "-o", str(bag / "t.csv"))
    assert r.code == 2, r.out + r.err
    assert "the packages folder" in r.err
    assert list(bag.iterdir()) == []


# -- the helper itself ------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_private_files_get_exactly_their_mode(
    tmp_path: Path, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    secret = write_output(tmp_path / "links.txt", "https://x?sig=1\n", mode=PRIVATE)
    script = write_output(tmp_path / "get.sh", "#!/bin/sh\n", mode=PRIVATE_SCRIPT)
    assert (mode_of(secret), mode_of(script)) == (0o600, 0o700)
    nested = write_output(tmp_path / "a" / "b" / "s.sh", "x", mode=PRIVATE_SCRIPT, parents=True)
    assert mode_of(nested.parent) == mode_of(nested.parent.parent) == 0o700


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    """The check before writing and the final step agree: the last step cannot overwrite."""
    target = tmp_path / "t.csv"
    with pytest.raises(ValidationFailed, match="already exists"), open_output(target) as out:  # noqa: PT012
        out.write("mine")
        target.write_text("someone else's")
    assert target.read_text() == "someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    with pytest.raises(RuntimeError, match="midway"), open_output(target) as out:  # noqa: PT012
        out.write("half")
        raise RuntimeError("the report failed midway")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_to_one_name_leave_one_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def one(n: int) -> None:
        try:
            with open_output(target) as out:
                out.write(f"writer {n}\n" * 1000)
                barrier.wait(timeout=30)
            outcomes.append("wrote")
        except StewardError:
            outcomes.append("refused")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["refused", "refused", "refused", "wrote"]
    lines = set(target.read_text().splitlines())
    assert len(lines) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


_WRITER = """
import sys, time
from pathlib import Path
from steward.outfiles import open_output
with open_output(Path(sys.argv[1]), overwrite=True) as out:
    out.write("half a report")
    out.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def _writer(target: Path) -> subprocess.Popen[str]:
    """A process in the middle of writing ``target`` (its temporary file exists)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "writing\n"
    return proc


def test_a_write_killed_midway_leaves_a_stray_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("the old report")
    killed = _writer(target)
    killed.kill()  # kill -9 mid-write
    killed.communicate()
    strays = [p for p in tmp_path.iterdir() if p.name != "report.csv"]
    assert len(strays) == 1
    assert strays[0].name.startswith(".report.csv.")
    assert target.read_text() == "the old report"  # complete or absent: the old one stands
    write_output(target, "a report", overwrite=True)
    assert strays[0].exists()  # a minute's grace: a writer may not have locked it yet
    an_hour_ago = time.time() - 3600
    os.utime(strays[0], (an_hour_ago, an_hour_ago))
    (tmp_path / ".other.csv.0123456789ab.part").write_text("another file's")
    write_output(target, "the new report", overwrite=True)
    assert target.read_text() == "the new report"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.csv.0123456789ab.part",  # not this file's: not ours to judge
        "report.csv",
    ]


def test_a_writer_still_at_work_keeps_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    alive = _writer(target)
    try:
        temp = next(p for p in tmp_path.iterdir() if p.name.startswith(".report.csv."))
        an_hour_ago = time.time() - 3600
        os.utime(temp, (an_hour_ago, an_hour_ago))  # only its lock keeps it
        write_output(target, "another report", overwrite=True)
        assert temp.exists()  # held by a live writer: not a stray
    finally:
        alive.kill()
        alive.communicate()
