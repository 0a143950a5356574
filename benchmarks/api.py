"""API benchmark: Steward's REST API under load next to the framework's floor, same run.

100,000 access requests (about 1M events) are imported into a throwaway PostgreSQL; a small
package is built for DRS. `steward serve --workers 2 --no-worker` serves them; a bounded load
generator on loopback (wrk, Debian's `wrk` package; or, without it, an asyncio httpx client)
drives, for the same duration and connections:

  (a) the request list with two filters      GET /api/v1/requests?state=approved&requester=…
  (b) one request's detail with its timeline  GET /api/v1/requests/{id} + …/events
  (c) a DRS object                            GET /ga4gh/drs/v1/objects/{pkg}.1

and the same generator against a minimal FastAPI app returning a constant JSON body under the
same uvicorn settings (two processes): the framework's floor. Printed for each: requests/s,
p50/p95/p99 latency, errors, and Steward's throughput as a share of the floor's.

    uv run python benchmarks/api.py                       # 100,000 requests, 30 s, 64 connections
    uv run python benchmarks/api.py --requests 5000 --duration 5

Targets (from the issue): p95 < 50 ms, zero errors, the detail endpoint >= 40% of the floor's
throughput. Checked here only; tests never assert on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for tests.pg, tests.packaging_data and benchmarks.ledger
    sys.path.insert(0, str(ROOT))

FLOOR_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/floor")
def floor() -> dict[str, object]:
    return {"id": "req_01J0000000000000000000000", "state": "approved", "version": 7}
"""


@dataclass
class Result:
    name: str
    rps: float
    p50: float
    p95: float
    p99: float
    errors: int
    requests: int


def _wait_ready(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f}s")


@contextmanager
def _serving(cmd: list[str], env: dict[str, str], ready: str) -> Iterator[None]:
    # Its log goes to a file: a pipe nobody reads would stall the server once full.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
        try:
            _wait_ready(ready)
            yield
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wrk(name: str, urls: list[str], token: str | None, seconds: int, conns: int) -> Result:
    """wrk, the URLs taken in turn by a Lua script that also sets the token (kept off the
    command line, where `ps` shows it) and prints exact percentiles."""
    paths = ", ".join(f'"{u.split("/", 3)[3]}"' for u in urls)
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script = (
        f"{auth}local paths = {{{paths}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", "/" .. paths[i])\nend\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("PCT %d %d %d\\n", latency:percentile(50), '
        "latency:percentile(95), latency:percentile(99)))\nend\n"
    )
    base = "/".join(urls[0].split("/", 3)[:3])
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "load.lua"
        lua.write_text(script)
        lua.chmod(0o600)
        cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-s", str(lua), base]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"^PCT (\d+) (\d+) (\d+)$", out, re.M)
    assert found, out
    p50, p95, p99 = (int(x) / 1000 for x in found.groups())
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    socket = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    if m := re.search(socket, out):
        errors += sum(int(x) for x in m.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Result(name, rps, p50, p95, p99, errors, total)


async def _httpx_load(
    urls: list[str], token: str | None, seconds: int, conns: int
) -> tuple[list[float], int]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def one(k: int) -> None:
            nonlocal errors
            i = k
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    r = await client.get(urls[i % len(urls)])
                    if r.status_code >= 300:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                lat.append((time.perf_counter() - t0) * 1000)
                i += 1

        await asyncio.gather(*(one(k) for k in range(conns)))
    return lat, errors


def _httpx(name: str, urls: list[str], token: str | None, seconds: int, conns: int) -> Result:
    lat, errors = asyncio.run(_httpx_load(urls, token, seconds, conns))
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return Result(name, len(lat) / seconds, q(0.5), q(0.95), q(0.99), errors, len(lat))


def load(name: str, urls: list[str], token: str | None, seconds: int, conns: int) -> Result:
    runner = _wrk if shutil.which("wrk") else _httpx
    return runner(name, urls, token, seconds, conns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="access requests to import")
    ap.add_argument("--duration", type=int, default=30, help="seconds per endpoint")
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args(argv)

    from benchmarks.ledger import PROJECT, REVIEWERS, STEWARD, generate, vacuum
    from tests import pg
    from tests.packaging_data import make_dataset

    from steward.config import Settings
    from steward.db.session import Database
    from steward.services import access, importer, package_build, packages, tokens
    from steward.services.packages import PackageSpec

    work = Path(tempfile.mkdtemp(prefix="steward-api-bench-"))
    generator = "wrk" if shutil.which("wrk") else "httpx (asyncio)"
    try:
        with pg.cluster() as base:
            url = pg.create_database(base, "steward_api_bench")
            settings = Settings(home=work / "home", database_url=url)
            db = Database(settings)
            db.migrate()
            access.bootstrap_admin(db, user_id="admin")
            access.add_user(db, actor="admin", user_id=STEWARD)
            access.create_project(db, actor="admin", project_id=PROJECT, title="Benchmark")
            access.add_member(
                db, actor="admin", project_id=PROJECT, user_id=STEWARD, role="steward"
            )
            for reviewer in REVIEWERS:
                access.add_user(db, actor="admin", user_id=reviewer)
                access.add_member(
                    db, actor="admin", project_id=PROJECT, user_id=reviewer, role="reviewer"
                )
            csv_path = work / "requests.csv"
            generate(csv_path, args.requests)
            t0 = time.perf_counter()
            done = importer.import_requests(
                db, actor=STEWARD, project=PROJECT, path=csv_path, create_users=True
            )
            print(
                f"imported {done.events:,} events of {done.requests:,} requests in "
                f"{time.perf_counter() - t0:.1f}s",
                flush=True,
            )
            data = make_dataset(work / "ds", samples=4, fastq_size=2_000)
            spec = PackageSpec(
                name="bench", manifest=data.manifest, workflow_manifest=data.workflow_manifest
            )
            pkg, _ = packages.create(db, settings, actor=STEWARD, project=PROJECT, spec=spec)
            package_build.build(db, settings, actor=STEWARD, package_id=pkg.id)
            token = tokens.create(
                db, actor=STEWARD, scope="read", expires_in=timedelta(hours=2)
            ).secret
            from sqlalchemy import select

            from steward.db.models import AccessRequest

            with db.read() as s:
                some = s.execute(
                    select(AccessRequest.id, AccessRequest.requester)
                    .where(AccessRequest.state == "approved")
                    .order_by(AccessRequest.id)
                    .limit(200)
                ).all()
            db.dispose()
            if not some:
                print("no approved request to read: use more --requests", file=sys.stderr)
                return 2
            vacuum(url.replace("postgresql+psycopg://", "postgresql://"))
            port, floor_port = pg.free_port(), pg.free_port()
            env = dict(os.environ, STEWARD_HOME=str(settings.home), STEWARD_DATABASE_URL=url)
            steward = [
                sys.executable,
                "-m",
                "steward",
                "serve",
                "--workers",
                "2",
                "--no-worker",
                "--port",
                str(port),
            ]
            api = f"http://127.0.0.1:{port}"
            lists = [
                f"{api}/api/v1/requests?state=approved&requester={r}&limit=20" for _, r in some
            ]
            details = [
                u
                for rid, _ in some
                for u in (f"{api}/api/v1/requests/{rid}", f"{api}/api/v1/requests/{rid}/events")
            ]
            objects = [f"{api}/ga4gh/drs/v1/objects/{pkg.id}.{i}" for i in (1, 2, 3, 4)]
            results = []
            with _serving(steward, env, f"{api}/readyz"):
                for name, urls in (
                    ("list, 2 filters", lists),
                    ("detail + timeline", details),
                    ("DRS object", objects),
                ):
                    load(name, urls[:2], token, 2, 8)  # warm up
                    results.append(load(name, urls, token, args.duration, args.connections))
                    print(f"  {name}: {results[-1].rps:,.0f} req/s", flush=True)
            (work / "floor_app.py").write_text(FLOOR_APP)
            floor_cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "floor_app:app",
                "--workers",
                "2",
                "--port",
                str(floor_port),
                "--log-level",
                "warning",
                "--no-server-header",
                "--app-dir",
                str(work),
            ]
            with _serving(floor_cmd, dict(os.environ), f"http://127.0.0.1:{floor_port}/floor"):
                load("floor", [f"http://127.0.0.1:{floor_port}/floor"], None, 2, 8)
                floor = load(
                    "floor",
                    [f"http://127.0.0.1:{floor_port}/floor"],
                    None,
                    args.duration,
                    args.connections,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{args.requests:,} requests in PostgreSQL; `steward serve --workers 2`; {generator}, "
        f"{args.duration}s at {args.connections} connections per endpoint, on 2 CPUs\n"
    )
    names = ("req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "of floor")
    header = f"{'endpoint':<20} " + " ".join(f"{n:>9}" for n in names) + "  targets"
    print(header)
    print("-" * len(header))
    ok = True
    for r in [*results, floor]:
        share = r.rps / floor.rps if floor.rps else float("nan")
        checks = []
        if r is not floor:
            checks.append(("p95<50ms", r.p95 < 50))
            checks.append(("0 errors", r.errors == 0))
            if r.name.startswith("detail"):
                checks.append((">=40% floor", share >= 0.40))
        verdict = ", ".join(f"{n} {'pass' if v else 'FAIL'}" for n, v in checks) or "(the floor)"
        ok &= all(v for _, v in checks)
        print(
            f"{r.name:<20} {r.rps:>9,.0f} {r.p50:>9.1f} {r.p95:>9.1f} {r.p99:>9.1f} "
            f"{r.errors:>9} {share:>9.0%}  {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
