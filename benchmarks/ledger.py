"""Ledger benchmark: bulk import and reports over 100,000 requests (~1M events).

Steward's figures are printed next to the database's own tools on the same data in the same
run: the bulk loader (SQLite's ``sqlite3`` shell ``.import``, PostgreSQL ``COPY``) for the
import; for the reports, the same results as one raw window-function query each, run through
the DB-API with no Steward code around them, and the same query exported to a CSV file by
the database's own tool (``sqlite3 -csv``, ``COPY … TO STDOUT (FORMAT csv)``).

Each report is timed twice: built in memory (``reports.REPORTS[name]``, what the terminal,
JSON and XLSX outputs start from) and exported as ``steward report NAME --format csv
--output FILE`` does it (``reports.export_report``: the file written beside its target and
renamed into place). The target applies to both.

    uv run python benchmarks/ledger.py                      # 100,000 requests, both backends
    uv run python benchmarks/ledger.py --requests 2000 --backend sqlite
    uv run python benchmarks/ledger.py --repeat 0          # the import alone, no reports

Targets (from the issue, for a 2-core machine): import >= 20,000 events/s; each report over
1M events <= 2 s. The targets are checked here and only here: tests never assert on time.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for tests.pg (the throwaway PostgreSQL cluster)
    sys.path.insert(0, str(ROOT))

from steward.cli.reports import SCREEN_ROWS  # noqa: E402
from steward.config import Settings  # noqa: E402
from steward.db.session import Database  # noqa: E402
from steward.domain import requests as domain  # noqa: E402
from steward.services import access, importer, reports  # noqa: E402
from steward.services.requests import RequestFilter  # noqa: E402
from steward.tables import Table  # noqa: E402

PROJECT = "bench"
STEWARD = "sam"
SEED = 20261123
START = datetime(2022, 1, 1, tzinfo=UTC)
IMPORT_TARGET = 20_000.0  # events/s
REPORT_TARGET = 2.0  # seconds
INSTITUTIONS = [f"Institute {i}" for i in range(60)]
DATASETS = ["raw/wgs", "raw/wes", "phenotypes", "results/summary"]
DUO = ["GRU", "HMB", "DS;NPU", "HMB;IRB", "GRU;COL"]
REVIEWERS = [f"reviewer{i:02d}" for i in range(25)]


# ---- data ----------------------------------------------------------------------------------


def _path(rng: random.Random) -> list[str]:
    """A valid workflow path: draft, submitted, k x (returned, submitted), then an ending."""
    states = ["draft", "submitted"]
    for _ in range(rng.randint(2, 5)):
        states += ["returned", "submitted"]
    end = rng.random()
    if end < 0.55:
        states.append("approved")
        after = rng.random()
        if after < 0.10:
            states.append("revoked")
        elif after < 0.30:
            states.append("expired")
    elif end < 0.75:
        states.append("rejected")
    elif end < 0.85:
        states.append("cancelled")
    elif end < 0.92:
        states.pop()  # still waiting for the requester (returned)
    # else: still waiting for a reviewer (submitted)
    return states


_GAPS = {  # state entered → (min, max) minutes until it is entered
    "submitted": (30, 3 * 1440),
    "returned": (60, 10 * 1440),
    "approved": (60, 10 * 1440),
    "rejected": (60, 10 * 1440),
    "cancelled": (60, 20 * 1440),
    "revoked": (1440, 200 * 1440),
    "expired": (180 * 1440, 365 * 1440),
}


def generate(path: Path, n: int) -> tuple[int, datetime]:
    """Write a deterministic import CSV; return (rows, a 'now' after every event)."""
    rng = random.Random(SEED)
    span = 3 * 365 * 86400
    rows: list[tuple[datetime, int, list[str]]] = []
    for i in range(n):
        ext = f"EXT-{i:07d}"
        requester = f"user{rng.randrange(3000):04d}"
        reviewer = REVIEWERS[rng.randrange(len(REVIEWERS))]
        at = START + timedelta(seconds=rng.randrange(span))
        for k, state in enumerate(_path(rng)):
            if k:
                lo, hi = _GAPS[state]
                at += timedelta(minutes=rng.randint(lo, hi), seconds=rng.randrange(60))
            actor = (
                requester
                if state in ("draft", "submitted", "cancelled")
                else (STEWARD if state == "expired" else reviewer)
            )
            reason = {
                "returned": "please describe the analysis plan",
                "rejected": "outside the consented use",
                "revoked": "data-use terms breached",
                "cancelled": "no longer needed",
            }.get(state, "")
            first = k == 0
            rows.append(
                (
                    at,
                    len(rows),
                    [
                        ext,
                        state,
                        at.isoformat(),
                        f"Study {i} of {rng.choice(DATASETS)}" if first else "",
                        requester if first else "",
                        actor,
                        reason,
                        rng.choice(INSTITUTIONS) if first else "",
                        f"Prof {requester}" if first else "",
                        "association analysis of consented cohorts" if first else "",
                        ";".join(rng.sample(DATASETS, 2)) if first else "",
                        rng.choice(DUO) if first else "",
                        reviewer if first else "",
                    ],
                )
            )
    rows.sort(key=lambda r: (r[0], r[1]))  # an export of the event log, oldest first
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(importer.COLUMNS)
        w.writerows(r[2] for r in rows)
    last = rows[-1][0]
    now = (last + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return len(rows), now


# ---- peers: the databases' own tools ---------------------------------------------------------


def peer_import_sqlite(csv_path: Path, db_path: Path) -> tuple[float, int]:
    """The sqlite3 shell's ``.import`` into a plain table (Python executemany if no shell)."""
    db_path.unlink(missing_ok=True)
    shell = shutil.which("sqlite3")
    t0 = time.perf_counter()
    if shell:
        subprocess.run(
            [shell, str(db_path), f".import --csv {csv_path} peer_import"],
            check=True,
            capture_output=True,
        )
    else:
        with csv_path.open(newline="", encoding="utf-8") as fh, sqlite3.connect(db_path) as conn:
            reader = csv.reader(fh)
            header = next(reader)
            conn.execute(f"CREATE TABLE peer_import ({', '.join(f'{h} TEXT' for h in header)})")
            marks = ", ".join("?" for _ in header)
            conn.executemany(f"INSERT INTO peer_import VALUES ({marks})", reader)
    elapsed = time.perf_counter() - t0
    with sqlite3.connect(db_path) as conn:
        count = conn.execute("SELECT count(*) FROM peer_import").fetchone()[0]
    return elapsed, int(count)


def peer_import_postgres(csv_path: Path, dsn: str) -> tuple[float, int]:
    """psycopg ``COPY … FROM STDIN`` of the same CSV into a plain table."""
    import psycopg

    cols = ", ".join(f"{c} text" for c in importer.COLUMNS)
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS peer_import")
        conn.execute(f"CREATE TABLE peer_import ({cols})")
        conn.commit()
        t0 = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY peer_import FROM STDIN (FORMAT csv, HEADER true)") as copy,
            csv_path.open("rb") as fh,
        ):
            while chunk := fh.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - t0
        count = conn.execute("SELECT count(*) FROM peer_import").fetchone()
        conn.execute("DROP TABLE peer_import")
        conn.commit()
    assert count is not None
    return elapsed, int(count[0])


def _peer_sql(dialect: str, now: datetime) -> dict[str, str]:
    """The reports as one raw SQL query each, as someone at the sqlite3/psql prompt writes them."""
    if dialect == "sqlite":

        def ep(col: str) -> str:
            return f"((julianday({col}) - 2440587.5) * 86400.0)"

        reason, distinct = "json_extract(data, '$.reason')", "IS NOT"
    else:

        def ep(col: str) -> str:
            return f"EXTRACT(EPOCH FROM {col})::float8"

        reason, distinct = "data->>'reason'", "IS DISTINCT FROM"
    now_s = now.timestamp()
    terminal = ", ".join(f"'{s}'" for s in sorted(domain.WORKFLOW.terminal_states))
    stops = ", ".join(f"'{s}'" for s in sorted(domain.WORKFLOW.clock_stop))
    slas = {s.name: s.sla.total_seconds() for s in domain.WORKFLOW.states if s.sla}
    sla_case = "CASE to_state " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in slas.items()) + " END"
    kind = f"subject_kind = '{domain.KIND}' AND project_id = '{PROJECT}'"
    moves = "(from_state IS NULL OR from_state <> to_state)"
    transitions = f"""
        SELECT subject_id, seq, from_state, to_state, actor, at, {reason} AS reason,
               {ep("at")} AS at_s
        FROM events WHERE {kind} AND {moves}"""
    timed = f"""
        SELECT *, lag(at_s) OVER w AS prev_s, lead(at_s) OVER w AS next_s,
               row_number() OVER w AS ord
        FROM ({transitions}) t
        WINDOW w AS (PARTITION BY subject_id ORDER BY seq)"""
    tracking = f"""
        WITH clock AS (
            SELECT subject_id,
                   min(CASE WHEN to_state = '{domain.WORKFLOW.clock_start}' THEN {ep("at")} END)
                     AS start,
                   min(CASE WHEN to_state IN ({stops}) THEN {ep("at")} END) AS stop
            FROM events WHERE {kind} AND from_state {distinct} to_state
            GROUP BY subject_id)
        SELECT r.id, r.project_id, r.title, r.state, r.requester, r.institution,
               r.project_lead, r.intended_use, r.reviewer, r.datasets, r.created_at,
               r.updated_at, coalesce(c.stop, {now_s}) - c.start AS total
        FROM access_requests r LEFT JOIN clock c ON c.subject_id = r.id
        WHERE r.project_id = '{PROJECT}'
        ORDER BY r.created_at, r.id"""
    changelog = f"""
        SELECT subject_id, ord, from_state, to_state, at, actor, reason,
               at_s - prev_s AS time_in_from,
               CASE WHEN next_s IS NOT NULL THEN next_s - at_s
                    WHEN to_state IN ({terminal}) THEN NULL
                    ELSE {now_s} - at_s END AS time_in_to,
               next_s IS NULL AS current
        FROM ({timed}) x
        ORDER BY subject_id, seq"""
    stays = f"""
        SELECT to_state, coalesce(next_s, {now_s}) - at_s AS secs,
               CASE WHEN next_s IS NULL THEN 1 ELSE 0 END AS ongoing
        FROM ({timed}) x WHERE to_state NOT IN ({terminal})"""
    if dialect == "sqlite":  # no percentile_cont: interpolate between ranks by hand
        ranked = f"""
            SELECT *, row_number() OVER (PARTITION BY to_state ORDER BY secs) - 1 AS i,
                   count(*) OVER (PARTITION BY to_state) AS n
            FROM ({stays}) s"""

        def q(p: float) -> str:
            lo = f"CAST((n - 1) * {p} AS INTEGER)"
            frac = f"((n - 1) * {p} - {lo})"
            return (
                f"sum(CASE WHEN i = {lo} THEN secs * (1 - {frac}) "
                f"WHEN i = {lo} + 1 THEN secs * {frac} END)"
            )

        time_in_state = f"""
            SELECT to_state, count(*), sum(ongoing), {q(0.5)}, {q(0.9)}, max(secs),
                   sum(CASE WHEN secs > {sla_case} THEN 1 ELSE 0 END)
            FROM ({ranked}) r GROUP BY to_state"""
    else:
        time_in_state = f"""
            SELECT to_state, count(*), sum(ongoing),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY secs),
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY secs), max(secs),
                   sum(CASE WHEN secs > {sla_case} THEN 1 ELSE 0 END)
            FROM ({stays}) s GROUP BY to_state"""
    cond = " OR ".join(
        f"(state = '{k}' AND {ep('state_since')} < {now_s - v})" for k, v in slas.items()
    )
    sla = f"""
        SELECT id, title, state, state_since, {now_s} - {ep("state_since")} AS stayed,
               requester, reviewer
        FROM access_requests WHERE project_id = '{PROJECT}' AND ({cond})
        ORDER BY state_since"""
    # For scale, not a report: the change log's rows fetched as they are (no durations).
    fetch = f"""
        SELECT subject_id, seq, from_state, to_state, at, actor, {reason}
        FROM events WHERE {kind} AND {moves} ORDER BY subject_id, seq"""
    return {
        "tracking": tracking,
        "changelog": changelog,
        "time-in-state": time_in_state,
        "sla": sla,
        "fetch": fetch,
    }


# ---- running --------------------------------------------------------------------------------


@dataclass
class Figure:
    backend: str
    step: str
    steward_s: float
    peer_s: float
    peer_name: str
    events: int | None = None  # for throughput steps
    rows: int | None = None
    check: str = ""
    floor_s: float | None = None  # changelog only: a plain SELECT of the same rows

    @property
    def passed(self) -> bool:
        if self.events is not None:
            return self.events / self.steward_s >= IMPORT_TARGET
        return self.steward_s <= REPORT_TARGET


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _check(step: str, table: Table, peer_rows: Sequence[Sequence[Any]]) -> str:
    """Steward's report and the raw query must agree (rows, and figures where comparable)."""
    ours_rows = [r for r in table.rows if r[1]] if step == "time-in-state" else table.rows
    if len(ours_rows) != len(peer_rows):
        return f"MISMATCH {len(ours_rows)} vs {len(peer_rows)} rows"
    if step == "time-in-state":
        ours = {r[0]: r for r in table.rows if r[1]}
        for p in peer_rows:
            r = ours.get(p[0])
            want = (r[1], r[2], r[3], r[4], r[5], r[7] or 0) if r else None
            if want is None or not all(
                math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.01)
                for a, b in zip(want, p[1:], strict=True)
            ):
                return f"MISMATCH in {p[0]}"
    if step == "changelog":
        a = sum(r[7] or 0 for r in table.rows) + sum(r[8] or 0 for r in table.rows)
        b = sum(r[7] or 0 for r in peer_rows) + sum(r[8] or 0 for r in peer_rows)
        if not math.isclose(a, b, rel_tol=1e-9):
            return "MISMATCH in durations"
    if step == "tracking":
        a = sum(r[12] or 0 for r in table.rows)
        b = sum(r[12] or 0 for r in peer_rows)
        if not math.isclose(a, b, rel_tol=1e-9):
            return "MISMATCH in durations"
    return "same"


UTC_ZONE = ZoneInfo("UTC")
LOCAL_ZONE = ZoneInfo("Europe/Helsinki")


def _lines(path: Path) -> int:
    """CSV records in a file (fields here never hold a line break)."""
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def run_backend(
    backend: str,
    url: str,
    workdir: Path,
    csv_path: Path,
    now: datetime,
    repeat: int,
    peer_import: Callable[[], tuple[float, int]],
    peer_query: Callable[[str], Callable[[], list[Any]]],
    peer_export: Callable[[str, Path], Callable[[], int]],
    settle: Callable[[], None],
) -> list[Figure]:
    figures: list[Figure] = []
    db = Database(Settings(home=workdir / f"home-{backend}", database_url=url))
    try:
        db.migrate()
        access.bootstrap_admin(db, user_id="admin")
        access.add_user(db, actor="admin", user_id=STEWARD, display_name="Sam Steward")
        access.create_project(db, actor="admin", project_id=PROJECT, title="Benchmark")
        access.add_member(db, actor="admin", project_id=PROJECT, user_id=STEWARD, role="steward")
        for reviewer in REVIEWERS:  # imported decisions need the reviewer role, as live ones do
            access.add_user(db, actor="admin", user_id=reviewer)
            access.add_member(
                db, actor="admin", project_id=PROJECT, user_id=reviewer, role="reviewer"
            )
        print(f"[{backend}] importing {csv_path.name} …", flush=True)
        t0 = time.perf_counter()
        result = importer.import_requests(
            db, actor=STEWARD, project=PROJECT, path=csv_path, create_users=True
        )
        steward_s = time.perf_counter() - t0
        peer_s, peer_rows = peer_import()
        figures.append(
            Figure(
                backend,
                "import",
                steward_s,
                peer_s,
                "sqlite3 .import" if backend == "sqlite" else "COPY",
                events=result.events,
                rows=peer_rows,
                check=f"{result.requests:,} requests, {len(result.users_created):,} users"
                + ("" if result.events == peer_rows else f"; MISMATCH: {peer_rows:,} rows"),
            )
        )
        print(
            f"[{backend}] imported {result.events} events of {result.requests} requests "
            f"in {steward_s:.1f}s",
            flush=True,
        )
        if repeat == 0:  # --repeat 0: the import alone
            return figures
        settle()
        flt = RequestFilter(project=PROJECT)
        out = workdir / f"report-{backend}.csv"
        for step, fn in reports.REPORTS.items():

            def build(fn: reports.Report = fn) -> Table:
                return fn(db, actor=STEWARD, flt=flt, now=now)

            ours_s, table = best_of(repeat, build)
            theirs_s, rows = best_of(repeat, peer_query(step))
            floor_s = best_of(repeat, peer_query("fetch"))[0] if step == "changelog" else None
            figures.append(
                Figure(
                    backend,
                    f"{step} (build)",
                    ours_s,
                    theirs_s,
                    "raw SQL (DB-API)",
                    rows=len(table.rows),
                    check=_check(step, table, rows),
                    floor_s=floor_s,
                )
            )
            print(f"[{backend}] {step}: {ours_s:.2f}s (raw SQL {theirs_s:.2f}s)", flush=True)
            if step == "changelog":
                # what `steward report changelog` shows on screen: its first rows, read alone

                def screen(fn: reports.Report = fn) -> Table:
                    return fn(db, actor=STEWARD, flt=flt, now=now, limit=SCREEN_ROWS)

                screen_s, first = best_of(repeat, screen)
                figures.append(
                    Figure(
                        backend,
                        f"{step} (screen: first {SCREEN_ROWS} rows)",
                        screen_s,
                        theirs_s,
                        "raw SQL (DB-API), all rows",
                        rows=len(first.rows),
                        check="same rows"
                        if first.rows == table.rows[:SCREEN_ROWS] and first.size == len(table.rows)
                        else "MISMATCH",
                    )
                )
                print(f"[{backend}] {step} on screen: {screen_s:.2f}s", flush=True)

            def export(step: str = step) -> int:
                return reports.export_report(
                    db, step, actor=STEWARD, flt=flt, fmt="csv", path=out, tz=UTC_ZONE, now=now
                )

            ours_s, written = best_of(repeat, export)
            theirs_s, peer_lines = best_of(repeat, peer_export(step, out.with_suffix(".peer.csv")))
            lines = _lines(out) - 1
            figures.append(
                Figure(
                    backend,
                    f"{step} (CSV file)",
                    ours_s,
                    theirs_s,
                    "DB CSV export",
                    rows=written,
                    check="same rows"
                    if written == lines == len(table.rows) and peer_lines == len(rows)
                    else f"MISMATCH {written}/{lines} vs {len(table.rows)}; peer {peer_lines}",
                )
            )
            print(f"[{backend}] {step} CSV: {ours_s:.2f}s (DB export {theirs_s:.2f}s)", flush=True)
            if step == "changelog":
                # UTC exports write the lines the ledger keeps; any other zone renders every
                # row from the events: timed too, against the same peer.

                def export_local() -> int:
                    return reports.export_report(
                        db,
                        "changelog",
                        actor=STEWARD,
                        flt=flt,
                        fmt="csv",
                        path=out,
                        tz=LOCAL_ZONE,
                        now=now,
                    )

                local_s, local_rows = best_of(repeat, export_local)
                figures.append(
                    Figure(
                        backend,
                        f"{step} (CSV file, {LOCAL_ZONE.key})",
                        local_s,
                        theirs_s,
                        "DB CSV export (UTC)",
                        rows=local_rows,
                        check="same rows" if local_rows == written else "MISMATCH",
                    )
                )
                print(f"[{backend}] {step} CSV in {LOCAL_ZONE.key}: {local_s:.2f}s", flush=True)
        for f in workdir.glob("report-*.csv"):
            f.unlink()
    finally:
        db.dispose()
    return figures


def run_sqlite(workdir: Path, csv_path: Path, now: datetime, repeat: int) -> list[Figure]:
    db_path = workdir / "steward-sqlite.db"
    for p in workdir.glob("steward-sqlite.db*"):
        p.unlink()
    sql = _peer_sql("sqlite", now)

    def peer_query(step: str) -> Callable[[], list[Any]]:
        def run() -> list[Any]:
            with sqlite3.connect(db_path) as conn:
                return conn.execute(sql[step]).fetchall()

        return run

    def peer_export(step: str, out: Path) -> Callable[[], int]:
        """The sqlite3 shell writing the raw query's result as CSV (Python's csv module over
        the DB-API when there is no shell)."""
        shell = shutil.which("sqlite3")

        def run() -> int:
            if shell:
                with out.open("wb") as fh:
                    subprocess.run([shell, "-csv", str(db_path), sql[step]], check=True, stdout=fh)
            else:
                with sqlite3.connect(db_path) as conn, out.open("w", newline="") as fh:
                    csv.writer(fh).writerows(conn.execute(sql[step]))
            return _lines(out)

        return run

    return run_backend(
        "sqlite",
        f"sqlite:///{db_path}",
        workdir,
        csv_path,
        now,
        repeat,
        lambda: peer_import_sqlite(csv_path, workdir / "peer-sqlite.db"),
        peer_query,
        peer_export,
        lambda: None,
    )


@contextmanager
def _postgres() -> Iterator[tuple[str, str]]:
    from tests import pg

    with pg.cluster() as base:
        url = pg.create_database(base, "steward_bench")
        yield url, url.replace("postgresql+psycopg://", "postgresql://")


def vacuum(dsn: str) -> None:
    """What autovacuum does within a minute of a bulk load, done now so that it does not run
    (on one of the two cores) in the middle of the timings."""
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) events, access_requests")
    print(f"[postgres] VACUUM (ANALYZE) after the import: {time.perf_counter() - t0:.1f}s")


def run_postgres(workdir: Path, csv_path: Path, now: datetime, repeat: int) -> list[Figure]:
    import psycopg

    sql = _peer_sql("postgresql", now)
    with _postgres() as (url, dsn):

        def peer_query(step: str) -> Callable[[], list[Any]]:
            def run() -> list[Any]:
                with psycopg.connect(dsn) as conn:
                    return conn.execute(sql[step]).fetchall()

            return run

        def peer_export(step: str, out: Path) -> Callable[[], int]:
            """``COPY (query) TO STDOUT (FORMAT csv)`` into a file, as psql's \\copy does."""

            def run() -> int:
                with (
                    psycopg.connect(dsn) as conn,
                    conn.cursor() as cur,
                    cur.copy(f"COPY ({sql[step]}) TO STDOUT (FORMAT csv)") as copy,
                    out.open("wb") as fh,
                ):
                    for data in copy:
                        fh.write(data)
                return _lines(out)

            return run

        return run_backend(
            "postgres",
            url,
            workdir,
            csv_path,
            now,
            repeat,
            lambda: peer_import_postgres(csv_path, dsn),
            peer_query,
            peer_export,
            lambda: vacuum(dsn),
        )


def print_table(figures: list[Figure]) -> None:
    head = (
        "backend",
        "step",
        "Steward",
        "peer",
        "peer tool",
        "ratio",
        "target",
        "result",
        "check",
    )
    lines: list[tuple[str, ...]] = [head]
    for f in figures:
        if f.events is not None:
            ours = f"{f.events / f.steward_s:,.0f} ev/s ({f.steward_s:.1f}s)"
            theirs = f"{(f.rows or 0) / f.peer_s:,.0f} ev/s ({f.peer_s:.1f}s)"
            target = f">= {IMPORT_TARGET:,.0f} ev/s"
        else:
            ours = f"{f.steward_s:.2f}s ({f.rows:,} rows)"
            theirs = f"{f.peer_s:.2f}s"
            target = f"<= {REPORT_TARGET:.0f}s"
        lines.append(
            (
                f.backend,
                f.step,
                ours,
                theirs,
                f.peer_name,
                f"{f.steward_s / f.peer_s:.1f}x",
                target,
                "pass" if f.passed else "FAIL",
                f.check,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for k, line in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print("ratio = Steward time / peer time (lower is better; 1.0x = as fast as the raw tool)")
    for f in figures:
        if f.floor_s is not None:
            print(
                f"{f.backend}: a plain SELECT of the change log's {f.rows:,} rows into Python "
                f"(no durations, no window functions) takes {f.floor_s:.2f}s by itself"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000, help="requests to generate")
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the CSV and SQLite files in DIR (an existing CSV for N is reused)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each report; best is shown (0: time the import alone)",
    )
    args = ap.parse_args(argv)

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="steward-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = workdir / f"requests-{args.requests}-seed{SEED}.csv"
        stamp = csv_path.with_suffix(".now")
        t0 = time.perf_counter()
        if args.keep is not None and csv_path.exists() and stamp.exists():
            rows_text, now_text = stamp.read_text().split()
            rows, now = int(rows_text), datetime.fromisoformat(now_text)
            how = "reused"
        else:
            rows, now = generate(csv_path, args.requests)
            stamp.write_text(f"{rows} {now.isoformat()}\n")
            how = "generated"
        print(
            f"{how} {rows:,} rows for {args.requests:,} requests "
            f"({rows / args.requests:.1f} events/request, {csv_path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - t0:.1f}s; reports as of {now.isoformat()}",
            flush=True,
        )
        figures: list[Figure] = []
        if args.backend in ("sqlite", "both"):
            figures += run_sqlite(workdir, csv_path, now, args.repeat)
        if args.backend in ("postgres", "both"):
            figures += run_postgres(workdir, csv_path, now, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}; {args.requests:,} requests"
    )
    print_table(figures)
    return 0 if all(f.passed for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
