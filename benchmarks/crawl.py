"""Crawl benchmark: Steward's dataset crawl against ``find`` and ``rclone lsjson`` on one tree.

The tree: ``--datasets`` dataset folders (default 5,000) spread over six stage folders
(external … published), each holding a MAGE-TAB IDF and SDRF and data files in two ``raw/``
sub-folders, ``--files`` files per dataset in all (default 40: 200,000 files). In one run,
on the same tree, warm page cache for every tool:

* ``find TREE -type f | wc -l`` — the floor for walking the tree (names only, one process in C);
* ``rclone lsjson -R TREE`` — the transfer tool's listing (name, size, mtime of every file);
* a bare Python walk — ``os.scandir`` recursively and a ``stat`` of every file, nothing else, in
  a fresh interpreter: the floor for any lister written in Python (what Steward's crawl adds on
  top is deciding, reading metadata and writing the per-file record);
* Steward, full crawl — ``steward crawl --sources F --json`` in its own process on a fresh
  SQLite database (the embedded default): walk, read every IDF/SDRF, decide each dataset's
  stage, write datasets, places, the per-file record and their events;
* Steward, unchanged re-crawl — the same again: the listing states say nothing changed;
* Steward, 1% changed — ``--change`` of the datasets (default 1%) gain a data file and a new
  IDF title, then a re-crawl.

Each Steward crawl runs ``--repeat`` times (default 3; the full crawl on a fresh database each
time, the 1% change made anew before each re-crawl) and the median run is reported with the
spread: on a 2-CPU machine one run differs from the next by up to a fifth. Peak memory of each
Steward run comes from ``/usr/bin/time -v`` (maximum resident set size).
``--million`` adds a metadata-free crawl of 1,000,000 files (25,000 datasets x 40 files) for
memory. Targets (issue 11): full crawl <= 1.5 x find; unchanged re-crawl <= 0.3 x the full
crawl; 1% change <= 0.1 x the full crawl; peak memory < 300 MB at 1M files. Tests never
assert on time; this script prints the figures and whether each target holds.

    uv run python benchmarks/crawl.py                   # 200,000 files in 5,000 datasets
    uv run python benchmarks/crawl.py --datasets 500    # a quick look: 20,000 files
    uv run python benchmarks/crawl.py --million         # and the 1M-file memory run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STAGES = ("external", "incoming", "loading", "analysing", "processed", "published")
ACCESSION = r"^E-MTAB-\d+$"
STEWARD = "sam"
PROJECT = "bench"
FIND_TARGET = 1.5
UNCHANGED_TARGET = 0.3
CHANGED_TARGET = 0.1
MEMORY_TARGET_MB = 300


@dataclass
class Run:
    seconds: float
    peak_mb: float | None
    summary: dict[str, object] | None = None


def _idf(accession: str, title: str) -> str:
    return (
        "MAGE-TAB Version\t1.1\n"
        f"Investigation Title\t{title}\n"
        "Comment[AEExperimentType]\tRNA-seq of coding RNA\n"
        "Person Last Name\tCurie\nPerson First Name\tMarie\nPerson Roles\tcurator\n"
        f"Comment[ArrayExpressAccession]\t{accession}\n"
    )


def _sdrf(n: int) -> str:
    rows = ["Source Name\tCharacteristics[organism]\tAssay Name"]
    rows += [f"s{i}\tHomo sapiens\trun {i}" for i in range(1, n + 1)]
    return "\n".join(rows) + "\n"


def make_tree(root: Path, *, datasets: int, files: int, metadata: bool) -> int:
    """The stage folders and datasets; returns how many files were written."""
    written = 0
    data_files = files - 2 if metadata else files
    payload = b"ACGT" * 8
    for stage in STAGES:
        (root / stage).mkdir(parents=True, exist_ok=True)
    for i in range(1, datasets + 1):
        accession = f"E-MTAB-{i}"
        folder = root / STAGES[i % len(STAGES)] / accession
        lanes = (folder / "raw" / "lane1", folder / "raw" / "lane2")
        for lane in lanes:
            lane.mkdir(parents=True)
        if metadata:
            (folder / f"{accession}.idf.txt").write_text(_idf(accession, f"Study {i}"))
            (folder / f"{accession}.sdrf.txt").write_text(_sdrf(4))
        for k in range(data_files):
            (lanes[k % 2] / f"run{k:03d}.fq.gz").write_bytes(payload)
        written += files
    return written


def change(root: Path, *, datasets: int, fraction: float, round_: int = 1) -> int:
    """Give ``fraction`` of the datasets a new data file and a new IDF title (each round
    its own, so every round changes them again)."""
    step = max(1, round(1 / fraction))
    changed = 0
    for i in range(1, datasets + 1, step):
        accession = f"E-MTAB-{i}"
        folder = root / STAGES[i % len(STAGES)] / accession
        (folder / "raw" / "lane1" / f"late{round_}.fq.gz").write_bytes(b"late")
        idf = folder / f"{accession}.idf.txt"
        if idf.exists():
            idf.write_text(_idf(accession, f"Study {i}, revision {round_}"))
        changed += 1
    return changed


def median(runs: list[Run]) -> Run:
    """The run of median crawl time (its own figures, wall and memory alike); the spread is
    printed beside it. One run on a 2-CPU machine varies by a fifth from the next."""
    return sorted(runs, key=_own)[len(runs) // 2]


def _spread(runs: list[Run]) -> str:
    if len(runs) < 2:
        return ""
    own = sorted(_own(r) for r in runs)
    return f" (of {len(runs)}: {own[0]:.2f}–{own[-1]:.2f} s)"


def sources(root: Path, *, metadata: bool) -> dict[str, object]:
    return {
        "sources": [
            {
                "name": stage,
                "project": PROJECT,
                "url": str(root / stage),
                "stage": stage,
                "pattern": ACCESSION,
                "extractors": ["mage-tab-idf", "mage-tab-sdrf"] if metadata else [],
                "tech": ["rna-seq"],
            }
            for stage in STAGES
        ]
    }


def setup_home(home: Path) -> dict[str, str]:
    """A fresh SQLite Steward home with the steward of the benchmark's project."""
    from steward.config import Settings
    from steward.db.session import Database
    from steward.services import access

    settings = Settings(home=home)
    db = Database(settings)
    db.migrate()
    access.bootstrap_admin(db, user_id="admin")
    access.add_user(db, actor="admin", user_id=STEWARD)
    access.create_project(db, actor="admin", project_id=PROJECT, title="Benchmark")
    access.add_member(db, actor="admin", project_id=PROJECT, user_id=STEWARD, role="steward")
    db.dispose()
    return dict(
        os.environ, STEWARD_HOME=str(home), STEWARD_DATABASE_URL=settings.resolved_database_url
    )


def _sync_and_warm(tree: Path) -> None:
    os.sync()
    subprocess.run(["find", str(tree), "-type", "f"], stdout=subprocess.DEVNULL, check=True)


_PEAK = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def timed(cmd: list[str], *, env: dict[str, str] | None = None, shell: bool = False) -> Run:
    """Wall time and (through /usr/bin/time -v) peak memory of one command."""
    full = (
        ["/usr/bin/time", "-v", *cmd] if not shell else ["/usr/bin/time", "-v", "sh", "-c", cmd[0]]
    )
    began = time.perf_counter()
    done = subprocess.run(full, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    peak = _PEAK.search(done.stderr)
    summary = None
    if done.stdout.lstrip().startswith("{"):
        summary = json.loads(done.stdout)
    return Run(seconds, int(peak.group(1)) / 1024 if peak else None, summary)


WALK = """
import os, sys
def walk(path):
    n = 0
    with os.scandir(path) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                n += walk(e.path)
            else:
                e.stat()
                n += 1
    return n
print(walk(sys.argv[1]))
"""


def python_walk(tree: Path) -> Run:
    return timed([sys.executable, "-c", WALK, str(tree)])


def peers(tree: Path) -> tuple[Run, Run | None, Run]:
    """``find``, ``rclone lsjson`` (when installed) and the bare Python walk, each warm."""
    _sync_and_warm(tree)
    find = timed([f"find {tree} -type f | wc -l"], shell=True)
    rclone = None
    if shutil.which("rclone"):
        _sync_and_warm(tree)
        rclone = timed([f"rclone lsjson -R {tree} > /dev/null"], shell=True)
    _sync_and_warm(tree)
    return find, rclone, python_walk(tree)


def crawl(config: Path, env: dict[str, str]) -> Run:
    return timed(
        [
            sys.executable,
            "-m",
            "steward",
            "crawl",
            "--sources",
            str(config),
            "--as",
            STEWARD,
            "--json",
        ],
        env=env,
    )


def _line(name: str, run: Run, base: float | None = None, note: str = "") -> str:
    ratio = f"{run.seconds / base:6.2f}x" if base else "       "
    peak = f"{run.peak_mb:7.0f} MB" if run.peak_mb is not None else "        -"
    return f"  {name:<34} {run.seconds:8.2f} s  {ratio}  {peak}  {note}"


MISSED: list[str] = []
"""Targets missed in this run (the script then exits 1, as the other benchmarks do)."""


def _verdict(ok: bool, what: str = "") -> str:
    if not ok:
        MISSED.append(what)
    return "target met" if ok else "TARGET NOT MET"


def _summary_note(run: Run) -> str:
    s = run.summary or {}
    datasets, events, status = (s.get(k, "?") for k in ("datasets", "events", "status"))
    return f"crawl {_own(run):.2f} s; {datasets} datasets, {events} events, {status}"


def bench_tree(work: Path, *, datasets: int, files: int, fraction: float, repeat: int) -> list[str]:
    tree = work / "tree"
    began = time.perf_counter()
    total = make_tree(tree, datasets=datasets, files=files, metadata=True)
    made = time.perf_counter() - began
    config = work / "sources.json"
    config.write_text(json.dumps(sources(tree, metadata=True)))
    homes = [setup_home(work / f"home{i}") for i in range(repeat)]
    env = homes[0]  # the re-crawls' database
    lines = [
        f"tree: {total:,} files in {datasets:,} datasets over {len(STAGES)} stage folders "
        f"(made in {made:.1f} s); Steward's figures are the median of {repeat} runs"
    ]

    find, rclone, walk = peers(tree)
    fulls, unchanged_runs, changed_runs = [], [], []
    for home in homes:  # each full crawl on a fresh database
        _sync_and_warm(tree)
        fulls.append(crawl(config, home))
    for _ in range(repeat):
        _sync_and_warm(tree)
        unchanged_runs.append(crawl(config, env))
    changed_n = 0
    for n in range(1, repeat + 1):
        changed_n = change(tree, datasets=datasets, fraction=fraction, round_=n)
        _sync_and_warm(tree)
        changed_runs.append(crawl(config, env))
    full, unchanged, changed = median(fulls), median(unchanged_runs), median(changed_runs)

    lines.append(f"  {'':<34} {'wall':>10}  {'vs find':>7}  {'peak mem':>10}")
    lines.append(_line("find -type f | wc -l", find, find.seconds))
    if rclone is not None:
        lines.append(_line("rclone lsjson -R", rclone, find.seconds))
    lines.append(_line("python scandir+stat walk", walk, find.seconds))
    for name, run, runs in (
        ("steward crawl (full)", full, fulls),
        ("steward crawl (unchanged)", unchanged, unchanged_runs),
        (f"steward crawl ({changed_n} changed)", changed, changed_runs),
    ):
        lines.append(_line(name, run, find.seconds, _summary_note(run) + _spread(runs)))
    lines.append("")
    lines.append(
        "  'wall' includes starting the steward command (~1.3 s here); 'crawl' is the\n"
        "  crawl's own time, as the worker running a scheduled crawl spends it."
    )
    full_vs_find = full.seconds / find.seconds
    lines.append(
        f"  full crawl / find            {full_vs_find:6.2f}  (target <= {FIND_TARGET})  "
        f"{_verdict(full_vs_find <= FIND_TARGET, 'full crawl vs find')}"
    )
    lines.append(f"  full crawl / python walk     {full.seconds / walk.seconds:6.2f}")
    if rclone is not None:
        lines.append(f"  full crawl / rclone lsjson   {full.seconds / rclone.seconds:6.2f}")
    for name, run, target in (
        ("unchanged", unchanged, UNCHANGED_TARGET),
        (f"{fraction:.0%} changed", changed, CHANGED_TARGET),
    ):
        wall = run.seconds / full.seconds
        own = _own(run) / _own(full)
        lines.append(
            f"  {name + ' / full':<28} wall {wall:5.2f}, crawl {own:5.2f}  (target <= {target})  "
            f"{_verdict(wall <= target, name + ' (wall)')} (wall), "
            f"{_verdict(own <= target, name + ' (crawl)')} (crawl)"
        )
    return lines


def _own(run: Run) -> float:
    """The crawl's own seconds (its summary), without the command's start."""
    value = (run.summary or {}).get("seconds")
    return float(value) if isinstance(value, int | float) else run.seconds


def bench_million(work: Path) -> list[str]:
    tree = work / "million"
    datasets, files = 25_000, 40
    began = time.perf_counter()
    total = make_tree(tree, datasets=datasets, files=files, metadata=False)
    made = time.perf_counter() - began
    config = work / "million.json"
    config.write_text(json.dumps(sources(tree, metadata=False)))
    env = setup_home(work / "home-million")
    find, rclone, walk = peers(tree)
    _sync_and_warm(tree)
    full = crawl(config, env)
    lines = [
        f"memory: {total:,} files in {datasets:,} datasets, no metadata (made in {made:.1f} s)"
    ]
    lines.append(_line("find -type f | wc -l", find, find.seconds))
    if rclone is not None:
        lines.append(_line("rclone lsjson -R", rclone, find.seconds))
    lines.append(_line("python scandir+stat walk", walk, find.seconds))
    lines.append(_line("steward crawl (full)", full, find.seconds, _summary_note(full)))
    peak = full.peak_mb or 0.0
    lines.append(
        f"  peak memory {peak:.0f} MB (target < {MEMORY_TARGET_MB} MB)  "
        f"{_verdict(peak < MEMORY_TARGET_MB, 'peak memory')}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", type=int, default=5000)
    ap.add_argument("--files", type=int, default=40, help="files per dataset (IDF + SDRF included)")
    ap.add_argument("--change", type=float, default=0.01, help="fraction of datasets changed")
    ap.add_argument("--million", action="store_true", help="also crawl 1,000,000 files for memory")
    ap.add_argument("--keep", action="store_true", help="keep the trees and homes (prints where)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each Steward crawl (median)")
    args = ap.parse_args(argv)
    if args.files < 3 or args.datasets < 1 or not 0 < args.change <= 1 or args.repeat < 1:
        ap.error(
            "--files needs at least 3, --datasets at least 1, --change in (0, 1], "
            "--repeat at least 1"
        )
    work = Path(tempfile.mkdtemp(prefix="steward-crawl-bench-"))
    print(
        f"# crawl benchmark — {datetime_now()} — {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    try:
        for line in bench_tree(
            work, datasets=args.datasets, files=args.files, fraction=args.change, repeat=args.repeat
        ):
            print(line, flush=True)
        if args.million:
            print()
            for line in bench_million(work):
                print(line, flush=True)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if MISSED:
        print(f"targets missed: {', '.join(MISSED)}")
    return 1 if MISSED else 0


def datetime_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


if __name__ == "__main__":
    raise SystemExit(main())
