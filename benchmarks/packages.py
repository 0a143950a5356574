"""Package build benchmark: Steward's bag builder against the hashing limit, ``cp`` and ``bagit``.

On the same files, in the same run, each tool timed after the same preparation:

* limit — what ``hashlib`` needs for SHA-256 + MD5 of every byte on this machine's cores,
  measured in the round: single-thread throughput of each digest (1 MiB updates of an
  in-memory buffer, best of three) times the number of CPUs. No tool computing both digests
  with ``hashlib`` (or OpenSSL) can beat it; Steward's link mode (hashing only) is judged
  against it;
* floor — ``sha256sum`` over every file plus ``cp -r`` of the folder, timed separately and
  summed; ``cp -r`` alone is what copy mode is judged against (with the limit);
* Steward, mode ``copy`` — ``build_payload`` + ``finish_bag``: one read per file, SHA-256 and
  MD5 of the same buffer on two threads, one write, RO-Crate, manifests, tag manifests;
* Steward, mode ``link`` — the same with hard links instead of copies (hashing only);
* ``bagit.py --sha256 --md5 --processes 2`` — the Library of Congress tool computing the same two
  checksums. It turns a folder into a bag *in place* (moving, not copying, the files), so it
  runs on a ``cp -r`` made beforehand (untimed); "cp + bagit" adds the copy's time for the same
  end result as Steward's copy mode: a bag next to untouched sources.

Caches: by default every tool starts warm — outputs of the previous step deleted, ``sync`` (so
no step pays for the previous one's writeback), then every source file read once. ``--cold``
drops the page cache instead (root only). Rounds alternate the order of the tools.

    uv run python benchmarks/packages.py                 # 2,000 x 1 MiB + one 1 GiB file
    uv run python benchmarks/packages.py --scale 0.2     # 400 x 1 MiB + one 205 MiB file
    uv run python benchmarks/packages.py --small         # 200 x 256 KiB + one 100 MiB file
    uv run python benchmarks/packages.py --data DIR      # any folder (left untouched)

At the end the push benchmark (``benchmarks/push.py``, Steward vs ``rclone copy``) runs on the
same data unless ``--skip-push``. Targets: link build <= 1.2 x limit and >= 1.5 x faster than
bagit; copy build <= 1.2 x max(cp -r, limit). Tests never assert on time; this script does.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for tests.s3 (used by the push benchmark)
    sys.path.insert(0, str(ROOT))

from steward.packaging import bag  # noqa: E402

MiB = 1 << 20
BAGIT = str(Path(sys.executable).parent / "bagit.py")
LIMIT_RATIO_TARGET = 1.2  # link build / limit, and copy build / max(cp -r, limit)
BAGIT_SPEEDUP_TARGET = 1.5  # bagit / link build


def _push_module() -> ModuleType | None:
    path = Path(__file__).with_name("push.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("steward_push_benchmark", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_data(root: Path, *, files: int, file_size: int, big: int) -> Path:
    """The push benchmark's generator when present (one data set for both), else the same
    layout here: ``root/data/batchNN/sampleNNNNN.bin`` plus ``root/data/genome.bam``."""
    push = _push_module()
    if push is not None:
        return Path(push.make_data(root, files=files, file_size=file_size, big=big))
    pool = os.urandom(64 * MiB)
    for i in range(files):
        folder = root / "data" / f"batch{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        start = (i * 7919) % (len(pool) - file_size)
        (folder / f"sample{i:05d}.bin").write_bytes(
            os.urandom(16) + pool[start + 16 : start + file_size]
        )
    with (root / "data" / "genome.bam").open("wb") as f:
        left = big
        while left:
            n = min(left, len(pool))
            f.write(os.urandom(min(16, n)) + pool[16:n])
            left -= n
    return root


def source_files(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*") if p.is_file())


# ---- preparation and timing ----------------------------------------------------------------


def prepare(files: list[Path], scratch: Path, cold: bool, *, clear: bool = True) -> None:
    if clear:
        for child in scratch.iterdir():
            shutil.rmtree(child)
    subprocess.run(["sync"], check=True)
    if cold:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return
    for path in files:  # warm: every source in the page cache
        with path.open("rb") as f:
            while f.read(8 * MiB):
                pass


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) for ``action``."""

    def cpu() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    action()
    return time.perf_counter() - t0, cpu() - c0


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, check=True, capture_output=True, **kwargs)


def cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def hashlib_seconds_per_byte(algorithm: str, *, size: int = 64 * MiB, repeat: int = 3) -> float:
    """One core's time per byte for ``algorithm``, updating 1 MiB at a time (as Steward does)
    from a buffer already in memory: this thread's CPU time (other jobs on the machine do not
    inflate it), the best of ``repeat`` runs."""
    data = memoryview(os.urandom(size))
    best = float("inf")
    for _ in range(repeat):
        h = hashlib.new(algorithm)
        t0 = time.thread_time()
        for start in range(0, size, MiB):
            h.update(data[start : start + MiB])
        best = min(best, time.thread_time() - t0)
    return best / size


def hashing_limit(total: int) -> tuple[float, float]:
    """(seconds, CPU seconds) that SHA-256 + MD5 of ``total`` bytes need on every core."""
    per_byte = hashlib_seconds_per_byte("sha256") + hashlib_seconds_per_byte("md5")
    return total * per_byte / cpus(), total * per_byte


# ---- the tools -----------------------------------------------------------------------------


def sha256sum(files: list[Path], data: Path) -> dict[str, str]:
    listing = b"\0".join(str(p.relative_to(data)).encode() for p in files) + b"\0"
    out = run(["xargs", "-0", "sha256sum", "--"], input=listing, cwd=data).stdout.decode()
    return {line[66:]: line[:64] for line in out.splitlines()}


def steward_build(
    data: Path, files: list[Path], out: Path, mode: bag.Mode, workers: int | None, chunk: int
) -> list[bag.BuiltFile]:
    entries = [
        bag.BagEntry(p.relative_to(data).as_posix(), p.as_uri(), size=p.stat().st_size)
        for p in files
    ]
    built = bag.build_payload(out, entries, mode=mode, workers=workers, chunk_size=chunk)
    info = bag.BagInfo("benchmark", "pkg_BENCH", "Steward", "bench", datetime.now(UTC))
    bag.finish_bag(out, info, built, tag_files={"report.html": b"<html></html>"})
    return built


def time_build(
    data: Path,
    files: list[Path],
    out: Path,
    mode: str,
    args: argparse.Namespace,
    result: dict[str, tuple[float, float]],
) -> list[bag.BuiltFile]:
    built: list[bag.BuiltFile] = []

    def go() -> None:
        built.extend(steward_build(data, files, out, mode, args.workers, args.chunk_kib * 1024))  # type: ignore[arg-type]

    result[f"steward {mode}"] = timed(go)
    return built


def one_round(
    data: Path,
    files: list[Path],
    scratch: Path,
    args: argparse.Namespace,
    order: list[str],
    total: int,
) -> dict[str, tuple[float, float]]:
    result: dict[str, tuple[float, float]] = {}
    sums: dict[str, str] = {}
    for tool in order:
        if tool == "limit":
            result["limit"] = hashing_limit(total)
            continue
        prepare(files, scratch, args.cold)
        if tool == "floor":
            sha = timed(lambda: sums.update(sha256sum(files, data)))
            prepare(files, scratch, args.cold)
            cp = timed(lambda: run(["cp", "-r", str(data), str(scratch / "copy")]))
            result["sha256sum"], result["cp -r"] = sha, cp
            result["floor"] = (sha[0] + cp[0], sha[1] + cp[1])
        elif tool in ("copy", "link"):
            built = time_build(data, files, scratch / f"bag-{tool}", tool, args, result)
            if sums:
                wrong = [b.relpath for b in built if sums.get(b.relpath) != b.sha256]
                if wrong:
                    raise SystemExit(f"steward's SHA-256 differs from sha256sum for {wrong[:3]}")
        elif tool == "bagit":
            target = scratch / "bagit"
            run(["cp", "-r", str(data), str(target)])  # bagit converts in place: work on a copy
            prepare(source_files(target), scratch, args.cold, clear=False)
            command = [sys.executable, BAGIT, "--sha256", "--md5", "--processes", "2", "--quiet"]
            result["bagit"] = timed(lambda: run([*command, str(target)]))  # noqa: B023
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="use this folder instead of generated data")
    parser.add_argument("--small", action="store_true", help="200 files + 100 MiB: a quick check")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="size of the generated data: 2,000 x scale files of 1 MiB + 1 GiB x scale (1.0)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every tool (2)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each tool")
    parser.add_argument("--workers", type=int, help="Steward's threads (default: one per CPU)")
    parser.add_argument("--chunk-kib", type=int, default=1024, help="Steward's buffer (1024 KiB)")
    parser.add_argument("--skip-push", action="store_true", help="skip the push benchmark")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="scratch space (/tmp)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="steward-pkg-bench-", dir=args.tmp))
    try:
        if args.data is None:
            if args.scale <= 0:
                parser.error("--scale must be positive")
            files_n, size, big = (
                (200, 256 * 1024, 100 * MiB)
                if args.small
                else (
                    max(1, round(2000 * args.scale)),
                    MiB,
                    max(MiB, round(1024 * MiB * args.scale)),
                )
            )
            print(f"creating {files_n} files of {size // 1024} KiB and one of {big // MiB} MiB …")
            root = make_data(base / "src", files=files_n, file_size=size, big=big)
            data = root / "data"
        else:
            root = data = args.data.resolve()
        scratch = base / "out"
        scratch.mkdir()
        files = source_files(data)
        total = sum(p.stat().st_size for p in files)
        print(
            f"machine: {cpus()} CPUs, {platform.platform()}, Python "
            f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f}"
        )
        print(
            f"data: {len(files)} files, {total / 1e9:.2f} GB; caches "
            f"{'cold' if args.cold else 'warm'}; {args.rounds} round(s)"
        )
        tools = ["limit", "floor", "copy", "link", "bagit"]
        rounds: list[dict[str, tuple[float, float]]] = []
        for n in range(args.rounds):
            order = tools if n % 2 == 0 else list(reversed(tools))
            r = one_round(data, files, scratch, args, order, total)
            r["cp + bagit"] = (r["cp -r"][0] + r["bagit"][0], r["cp -r"][1] + r["bagit"][1])
            rounds.append(r)
            print(f"  round {n + 1}: " + ", ".join(f"{k} {v[0]:.2f} s" for k, v in r.items()))
        print(f"load average after the rounds: {os.getloadavg()[0]:.2f}")
        report(rounds, total)
        ok = check_targets(rounds)
        if not args.skip_push:
            push = _push_module()
            if push is None:
                print("\npush benchmark: benchmarks/push.py not found, skipped")
            else:
                print("\npush benchmark (Steward vs rclone copy) on the same data:")
                p = push.run_push_benchmark(root, 4)
                print(
                    f"  steward {p['steward_mb_s_median']:.1f} MB/s, rclone "
                    f"{p['rclone_mb_s_median']:.1f} MB/s, ratio {p['ratio_median']:.2f}"
                )
        return 0 if ok else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


def median(rounds: list[dict[str, tuple[float, float]]], key: str, index: int = 0) -> float:
    return statistics.median(r[key][index] for r in rounds)


def report(rounds: list[dict[str, tuple[float, float]]], total: int) -> None:
    limit = median(rounds, "limit")
    print(f"\n{'tool':16s} {'seconds':>8s} {'MB/s':>8s} {'CPU s':>7s} {'x limit':>8s}  (median)")
    for key in (
        "limit",
        "sha256sum",
        "cp -r",
        "floor",
        "steward copy",
        "steward link",
        "bagit",
        "cp + bagit",
    ):
        sec = median(rounds, key)
        print(
            f"{key:16s} {sec:8.2f} {total / 1e6 / sec:8.1f} {median(rounds, key, 1):7.1f} "
            f"{sec / limit:8.2f}"
        )


def check_targets(rounds: list[dict[str, tuple[float, float]]]) -> bool:
    limit = median(rounds, "limit")
    link = median(rounds, "steward link")
    copy = median(rounds, "steward copy")
    cp = median(rounds, "cp -r")
    link_vs_limit = link / limit
    link_vs_bagit = median(rounds, "bagit") / link
    copy_vs_bound = copy / max(cp, limit)
    print(
        f"\nlink build / limit = {link_vs_limit:.2f} (target <= {LIMIT_RATIO_TARGET}); "
        f"bagit / link build = {link_vs_bagit:.2f} (target >= {BAGIT_SPEEDUP_TARGET})"
    )
    print(
        f"copy build / max(cp -r, limit) = {copy_vs_bound:.2f} (target <= {LIMIT_RATIO_TARGET}); "
        f"cp + bagit / copy build = {median(rounds, 'cp + bagit') / copy:.2f}; "
        f"copy build / floor = {copy / median(rounds, 'floor'):.2f}"
    )
    # When copying costs CPU too (it does in a VM: page-cache allocation, ext4), a copy mode
    # on every core cannot beat the CPU of hashing plus the CPU of cp spread over the cores.
    cpu_bound = (median(rounds, "limit", 1) + median(rounds, "cp -r", 1)) / cpus()
    print(
        f"(for reference: hashing + cp -r CPU over {cpus()} cores = {cpu_bound:.2f} s; "
        f"copy build / that = {copy / cpu_bound:.2f})"
    )
    return (
        link_vs_limit <= LIMIT_RATIO_TARGET
        and link_vs_bagit >= BAGIT_SPEEDUP_TARGET
        and copy_vs_bound <= LIMIT_RATIO_TARGET
    )


if __name__ == "__main__":
    raise SystemExit(main())
