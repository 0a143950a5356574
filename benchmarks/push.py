"""Push benchmark: ``steward share push``'s transfer engine against ``rclone copy``.

Both send the same folder to the same SeaweedFS S3 server (started here, on loopback, with
tests/s3.py), each into a fresh bucket, with the same parallelism: ``concurrency`` files at a
time and, for large files, ``part_concurrency`` parts in flight of ``part_size`` bytes each
(rclone: ``--transfers``, ``--s3-upload-concurrency``, ``--s3-chunk-size``). Files under one
part go up in one PUT with both (rclone: ``--s3-upload-cutoff`` = part size).

    uv run python benchmarks/push.py                 # 2,000 files (2 GB) + one 1 GB file
    uv run python benchmarks/push.py --small         # 200 files (50 MB) + one 100 MB file
    uv run python benchmarks/push.py --data DIR      # any folder

Both tools verify what they send: Steward hashes each byte once while streaming (SHA-256 of
the source against the package manifest, MD5 per part against the ETag) and checks every
object after upload; rclone compares MD5s. The SHA-256/MD5 of the source files are computed
before the timed run (building a package does that), and shown separately.
Target: Steward's throughput >= rclone's. Tests never assert on time; this script does.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for tests.s3 (the throwaway SeaweedFS server)
    sys.path.insert(0, str(ROOT))

from tests.s3 import SeaweedFS, loopback_env  # noqa: E402

from steward.adapters.storage import Store, open_store  # noqa: E402
from steward.adapters.transfer import TransferItem, transfer  # noqa: E402

MiB = 1 << 20
RCLONE = "/usr/bin/rclone"


# ---- data ----------------------------------------------------------------------------------


def make_data(root: Path, *, files: int, file_size: int, big: int) -> Path:
    """``files`` files of ``file_size`` bytes in 20 folders, plus one ``big`` file.

    Random bytes, each file different (a random 64 MiB pool, sliced at a random offset per
    file), so nothing compresses or deduplicates.
    """
    pool = os.urandom(64 * MiB)
    (root / "data").mkdir(parents=True, exist_ok=True)
    rnd = int.from_bytes(os.urandom(8), "big")
    for i in range(files):
        folder = root / "data" / f"batch{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        start = (rnd + i * 7919) % (len(pool) - file_size)
        (folder / f"sample{i:05d}.bin").write_bytes(
            os.urandom(16) + pool[start + 16 : start + file_size]
        )
    with (root / "data" / "genome.bam").open("wb") as f:
        left = big
        while left:
            n = min(left, len(pool))
            f.write(os.urandom(16) + pool[16:n] if n > 16 else os.urandom(n))
            left -= n
    return root


def digests(store: Store) -> list[TransferItem]:
    items = []
    for info in store.list():
        sha, md5 = hashlib.sha256(), hashlib.md5()
        with store.open_reader(info.key) as r:
            while block := r.read(8 * MiB):
                sha.update(block)
                md5.update(block)
        items.append(
            TransferItem(store, info.key, info.key, info.size, sha.hexdigest(), md5.hexdigest())
        )
    return items


def _cpu(who: int) -> float:
    """CPU seconds (user + system) used so far by this process or its finished children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# ---- the two contenders ----------------------------------------------------------------------


def push_steward(
    server: SeaweedFS,
    items: list[TransferItem],
    bucket: str,
    *,
    concurrency: int,
    part_size: int,
    part_concurrency: int,
) -> tuple[float, float]:
    server.make_bucket(bucket)
    dest = open_store(f"s3://{bucket}/pkg", server.config())
    t0, cpu0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    summary = transfer(
        items,
        dest,
        concurrency=concurrency,
        part_size=part_size,
        part_concurrency=part_concurrency,
    )
    seconds, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - cpu0
    assert summary.transferred == len(items), summary
    return seconds, cpu


def push_rclone(
    server: SeaweedFS,
    data: Path,
    bucket: str,
    *,
    concurrency: int,
    part_size: int,
    part_concurrency: int,
) -> tuple[float, float]:
    server.make_bucket(bucket)
    env = loopback_env()
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    env.update(
        {
            "RCLONE_CONFIG": os.devnull,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "SeaweedFS",
            "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_BENCH_REGION": server.region,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
        }
    )
    chunk = f"{part_size // MiB}Mi"
    cmd = [
        RCLONE,
        "copy",
        str(data),
        f"bench:{bucket}/pkg",
        "--transfers",
        str(concurrency),
        "--checkers",
        str(max(8, concurrency)),
        "--s3-upload-concurrency",
        str(part_concurrency),
        "--s3-chunk-size",
        chunk,
        "--s3-upload-cutoff",
        chunk,
        "--stats",
        "0",
        "-q",
    ]
    t0, cpu0 = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - cpu0


# ---- the benchmark -----------------------------------------------------------------------------


def run_push_benchmark(
    data_dir: Path,
    concurrency: int = 4,
    *,
    part_size: int = 16 * MiB,
    part_concurrency: int | None = None,
    rounds: int = 1,
    server: SeaweedFS | None = None,
) -> dict[str, Any]:
    """Push ``data_dir`` with Steward and with rclone, alternating, ``rounds`` times each;
    returns the figures (MB/s are decimal megabytes, best and median of the rounds)."""
    part_concurrency = part_concurrency or concurrency
    src = open_store(data_dir)
    t0 = time.perf_counter()
    items = digests(src)
    hashing = time.perf_counter() - t0
    total = sum(i.size for i in items)
    own = server is None
    server = server or SeaweedFS(volume_size_limit_mb=1024)
    if own:
        server.start()
    times: dict[str, list[float]] = {"steward": [], "rclone": []}
    cpus: dict[str, list[float]] = {"steward": [], "rclone": []}
    try:
        for n in range(rounds):
            # Alternate who goes first, so neither always meets a warmer server.
            order = ("rclone", "steward") if n % 2 == 0 else ("steward", "rclone")
            for tool in order:
                bucket = f"{tool}-{n}-{secrets.token_hex(4)}"
                if tool == "steward":
                    sec, cpu = push_steward(
                        server,
                        items,
                        bucket,
                        concurrency=concurrency,
                        part_size=part_size,
                        part_concurrency=part_concurrency,
                    )
                else:
                    sec, cpu = push_rclone(
                        server,
                        data_dir,
                        bucket,
                        concurrency=concurrency,
                        part_size=part_size,
                        part_concurrency=part_concurrency,
                    )
                times[tool].append(sec)
                cpus[tool].append(cpu)
                print(
                    f"  round {n + 1}: {tool:8s} {total / 1e6 / sec:8.1f} MB/s "
                    f"({sec:.1f} s, client CPU {cpu:.1f} s)"
                )
    finally:
        if own:
            server.stop()

    def rate(sec: float) -> float:
        return total / 1e6 / sec

    result: dict[str, Any] = {
        "files": len(items),
        "bytes": total,
        "concurrency": concurrency,
        "part_size": part_size,
        "part_concurrency": part_concurrency,
        "rounds": rounds,
        "hashing_seconds": hashing,
    }
    for tool, secs in times.items():
        result[f"{tool}_seconds"] = secs
        result[f"{tool}_cpu_seconds"] = cpus[tool]
        result[f"{tool}_mb_s_best"] = rate(min(secs))
        result[f"{tool}_mb_s_median"] = rate(statistics.median(secs))
    result["ratio_median"] = result["steward_mb_s_median"] / result["rclone_mb_s_median"]
    result["ratio_best"] = result["steward_mb_s_best"] / result["rclone_mb_s_best"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="push this folder instead of generated data")
    parser.add_argument("--small", action="store_true", help="200 files + 100 MB: a quick check")
    parser.add_argument("--concurrency", type=int, default=4, help="files at a time (4)")
    parser.add_argument("--part-size", type=int, default=16, help="MiB per part (16)")
    parser.add_argument("--part-concurrency", type=int, help="parts in flight per file")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tool (3)")
    args = parser.parse_args()
    if not Path(RCLONE).exists():
        print("rclone is missing: apt-get install rclone", file=sys.stderr)
        return 2

    scratch = None
    data = args.data
    if data is None:
        scratch = Path(tempfile.mkdtemp(prefix="steward-push-bench-"))
        files, size, big = (200, 256 * 1024, 100 * MiB) if args.small else (2000, MiB, 1024 * MiB)
        print(f"creating {files} files of {size // 1024} KiB and one of {big // MiB} MiB …")
        data = make_data(scratch / "src", files=files, file_size=size, big=big)
    try:
        version = subprocess.run(
            [RCLONE, "version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
        print(
            f"machine: {os.cpu_count()} CPUs, {platform.platform()}, "
            f"Python {platform.python_version()}; {version}"
        )
        r = run_push_benchmark(
            data,
            args.concurrency,
            part_size=args.part_size * MiB,
            part_concurrency=args.part_concurrency,
            rounds=args.rounds,
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"\n{r['files']} files, {r['bytes'] / 1e9:.2f} GB; concurrency {r['concurrency']}, "
        f"parts of {r['part_size'] // MiB} MiB, {r['part_concurrency']} in flight per file"
    )
    print(f"source SHA-256 + MD5 (before the timed runs): {r['hashing_seconds']:.1f} s")
    print(f"{'':10s} {'best MB/s':>10s} {'median MB/s':>12s}")
    for tool in ("steward", "rclone"):
        print(f"{tool:10s} {r[f'{tool}_mb_s_best']:10.1f} {r[f'{tool}_mb_s_median']:12.1f}")
    print(f"steward / rclone: {r['ratio_median']:.2f} (median), {r['ratio_best']:.2f} (best)")
    ok = r["ratio_median"] >= 1.0
    print("target (steward >= rclone):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
