"""The download script run with real curl against real presigned SeaweedFS links.

Objects are uploaded to a fresh bucket through the storage adapter, which also presigns the
links (SeaweedFS checks signature and expiry); the script is generated and run under dash and
bash --posix. Expired links are signed with a date in the past (``s3api.presign(now=…)``), so
the server really refuses them and no test waits for a clock.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from steward.adapters import s3api
from steward.adapters.storage import Store, open_store
from steward.packaging.script import (
    EXIT_EXPIRED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    ScriptEntry,
    write_download_script,
)
from tests import s3

SHELLS = [
    pytest.param(["dash"], id="dash"),
    pytest.param(["bash", "--posix"], id="bash-posix"),
]
BIG = "data/P1/fastq/sample 1_R1.fastq.gz"
FILES: dict[str, bytes] = {
    BIG: random.Random(1).randbytes(3 * 1024 * 1024 + 17),  # big enough for resume to matter
    "data/P1/it's a $weird `name` ü.txt": "ünïcødé content\n".encode(),
    "data/empty.txt": b"",
    "bag-info.txt": b"Bag-Software-Agent: steward\n",
    "manifest-sha256.txt": b"0000  data/P1/x\n",
}
ERROR_PAGE_MARKERS = (b"<?xml", b"<Error>", b"AccessDenied")


@dataclass
class Share:
    """A bucket holding the package's files and a way to make scripts for it."""

    server: s3.SeaweedFS
    bucket: str
    store: Store
    tmp: Path

    def links(self, *, signed_at: datetime | None = None, seconds: int = 3600) -> list[ScriptEntry]:
        """Links from the storage adapter; backdated ones (already expired) signed by hand."""
        return [
            ScriptEntry(
                path=path,
                url=(
                    self.store.presign_get(path, timedelta(seconds=seconds))
                    if signed_at is None
                    else s3api.presign(
                        self.server.config(), "GET", self.bucket, path, seconds, now=signed_at
                    )
                ),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
            for path, data in FILES.items()
        ]

    def script(
        self,
        entries: list[ScriptEntry] | None = None,
        *,
        expires_at: datetime | None = None,
        name: str = "download-P1.sh",
    ) -> Path:
        now = datetime.now(UTC)
        expires = expires_at or now + timedelta(hours=1)
        return write_download_script(
            self.links() if entries is None else entries,
            path=self.tmp / name,
            package_name="P1-fastq",
            package_id="pkg_01TEST",
            share_id="shr_01TEST",
            created_at=min(now, expires - timedelta(minutes=1)),
            expires_at=expires,
            created_by="Dana Steward",
            overwrite=True,  # some tests make a script of the same name again
        )


@pytest.fixture
def share(seaweedfs: s3.SeaweedFS, s3_bucket: str, tmp_path: Path) -> Share:
    store = open_store(f"s3://{s3_bucket}", seaweedfs.config())
    for key, data in FILES.items():
        store.write(key, data)
    return Share(seaweedfs, s3_bucket, store, tmp_path)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    w = tmp_path / "cwd"
    w.mkdir()
    return w


def run(
    shell: list[str],
    script: Path,
    *args: str,
    cwd: Path,
    path_first: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(shell[0])
    if exe is None:
        pytest.fail(f"{shell[0]} is not installed (.ci/run installs it)")
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (.ci/run installs it)")
    env = s3.loopback_env()  # no CA bundle or proxy variables for plain HTTP to loopback
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [exe, *shell[1:], str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_complete(dest: Path) -> None:
    for path, data in FILES.items():
        assert (dest / path).read_bytes() == data, path
    assert not list(dest.rglob("*.part"))


def assert_no_error_page(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file() and f.suffix != ".sh":
            head = f.read_bytes()[:512]
            assert not any(m in head for m in ERROR_PAGE_MARKERS), f


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("shell", SHELLS)
def test_full_download_then_rerun_skips_everything(
    shell: list[str], share: Share, work: Path
) -> None:
    script = share.script()
    first = run(shell, script, cwd=work)
    assert first.returncode == EXIT_OK, first.stdout + first.stderr
    dest = work / "P1-fastq"  # the default: a folder named after the package
    assert_complete(dest)
    out = first.stdout
    assert "Package P1-fastq: 5 files, 3.0 MiB, into P1-fastq" in out
    assert f"[1/5] {BIG} (3.0 MiB) ... ok, downloaded and verified" in out
    assert "[3/5] data/empty.txt (0 B) ... ok, downloaded and verified" in out
    assert "Done: 5 downloaded (3.0 MiB), 0 already complete, 0 failed." in out
    assert f"The files are in {dest}\n" in out

    before = snapshot(dest)
    again = run(shell, script, cwd=work)
    assert again.returncode == EXIT_OK, again.stderr
    assert again.stdout.count("ok, already downloaded") == 5
    assert "Done: 0 downloaded (0 B), 5 already complete, 0 failed." in again.stdout
    assert snapshot(dest) == before  # not rewritten: same bytes, inode and mtime


@pytest.mark.parametrize("shell", SHELLS)
def test_resume_after_partial_file(shell: list[str], share: Share, work: Path) -> None:
    dest = work / "dest"
    part = dest / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(FILES[BIG][: 1024 * 1024])  # an interrupted download's first MiB
    result = run(shell, share.script(), "--dest", str(dest), cwd=work)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert f"{BIG} (3.0 MiB) ... ok, downloaded and verified" in result.stdout
    assert "again from the start" not in result.stdout
    assert_complete(dest)


def test_resume_really_keeps_the_local_prefix(share: Share, work: Path) -> None:
    """Proof that curl asked for a range: a wrong local prefix survives until the checksum.

    Had curl downloaded the whole file, the zeros would be gone and the first check would pass.
    """
    dest = work / "dest"
    part = dest / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(bytes(1024 * 1024))
    result = run(["dash"], share.script(), "--dest", str(dest), cwd=work)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert (
        f"{BIG} (3.0 MiB) ... wrong SHA-256 checksum; again from the start ... "
        "ok, downloaded and verified"
    ) in result.stdout
    assert_complete(dest)


def test_complete_part_file_is_verified_without_downloading(share: Share, work: Path) -> None:
    """A .part that is already whole would get HTTP 416 from curl: it is checked and renamed."""
    dest = work / "dest"
    part = dest / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(FILES[BIG])
    # A link the server refuses: had the script asked for the file, it would have stopped.
    entries = [replace(e, url=e.url + "0") for e in share.links() if e.path == BIG]
    result = run(["dash"], share.script(entries), "--dest", str(dest), cwd=work)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert (dest / BIG).read_bytes() == FILES[BIG]
    assert not part.exists()


def test_part_file_longer_than_the_file_is_started_again(share: Share, work: Path) -> None:
    dest = work / "dest"
    part = dest / (BIG + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(FILES[BIG] + b"left over from something else")
    result = run(["dash"], share.script(), "--dest", str(dest), cwd=work)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert_complete(dest)


@pytest.mark.parametrize("shell", SHELLS)
def test_corrupted_or_truncated_local_file_is_downloaded_again(
    shell: list[str], share: Share, work: Path
) -> None:
    script = share.script()
    assert run(shell, script, cwd=work).returncode == EXIT_OK
    dest = work / "P1-fastq"
    big = bytearray((dest / BIG).read_bytes())
    big[2_000_000] ^= 0xFF  # one flipped bit pattern, same size
    (dest / BIG).write_bytes(bytes(big))
    (dest / "bag-info.txt").write_bytes(b"Bag-")  # truncated
    # A stale partial download of the corrupted file must not be resumed onto.
    (dest / (BIG + ".part")).write_bytes(b"junk")

    result = run(shell, script, cwd=work)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    out = result.stdout
    assert f"{BIG} (3.0 MiB) ... downloading again (wrong SHA-256 checksum) ... ok" in out
    assert "bag-info.txt (28 B) ... downloading again (wrong size: 4 bytes instead of 28)" in out
    assert "Done: 2 downloaded" in out
    assert "3 already complete" in out
    assert_complete(dest)


@pytest.mark.parametrize("shell", SHELLS)
def test_expired_links_are_refused_before_touching_anything(
    shell: list[str], share: Share, work: Path
) -> None:
    signed = datetime.now(UTC) - timedelta(hours=2)
    script = share.script(
        share.links(signed_at=signed, seconds=60),
        expires_at=signed + timedelta(seconds=60),
    )
    dest = work / "dest"
    dest.mkdir()
    (dest / "bag-info.txt.part").write_bytes(b"Bag-")
    before = snapshot(work)
    result = run(shell, script, "--dest", str(dest), cwd=work)
    assert result.returncode == EXIT_EXPIRED
    expires = (signed + timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M UTC")
    assert f"This link expired on {expires}; ask Dana Steward for a new script." in result.stderr
    assert result.stdout == ""
    assert snapshot(work) == before


@pytest.mark.parametrize("shell", SHELLS)
def test_server_refusal_despite_local_clock_keeps_everything(
    shell: list[str], share: Share, work: Path
) -> None:
    """Clock skew: the script thinks its links are valid, the server says 403."""
    good = share.script(name="good.sh")
    dest = work / "dest"
    assert run(shell, good, "--dest", str(dest), cwd=work).returncode == EXIT_OK
    # One file is gone with half of it downloaded; another was never started.
    (dest / BIG).rename(dest / (BIG + ".part"))
    os.truncate(dest / (BIG + ".part"), 1_000_000)
    (dest / "bag-info.txt").unlink()
    before = snapshot(dest)

    expired_links = share.links(signed_at=datetime.now(UTC) - timedelta(hours=2), seconds=60)
    expires_at = datetime.now(UTC) + timedelta(days=1)
    # First a file never started (no .part may appear), then one half done (its .part must not
    # grow an error page).
    for first in ("bag-info.txt", BIG):
        entries = sorted(expired_links, key=lambda e: e.path != first)
        skewed = share.script(entries, expires_at=expires_at, name="skewed.sh")
        result = run(shell, skewed, "--dest", str(dest), cwd=work)
        assert result.returncode == EXIT_EXPIRED, result.stdout + result.stderr
        assert "The server refused the download link (HTTP 403)." in result.stderr
        assert "This link expired on " in result.stderr
        assert "ask Dana Steward for a new script." in result.stderr
        assert "clock says" in result.stderr
        assert f"[1/5] {first}" in result.stdout
        assert "[2/5]" not in result.stdout  # every link has expired: no point going on
        assert snapshot(dest) == before  # complete files kept, the partial one untouched
        assert_no_error_page(work)

    # a new script finishes the job from where it stopped
    fresh = run(shell, share.script(name="fresh.sh"), "--dest", str(dest), cwd=work)
    assert fresh.returncode == EXIT_OK, fresh.stdout + fresh.stderr
    assert "Done: 2 downloaded" in fresh.stdout
    assert_complete(dest)


def test_failures_are_listed_after_trying_the_rest(share: Share, work: Path) -> None:
    entries = share.links()
    entries[1] = replace(entries[1], sha256="0" * 64)  # the server's bytes differ from the manifest
    entries.append(
        ScriptEntry(
            "data/gone.txt",
            share.store.presign_get("data/gone.txt", timedelta(hours=1)),
            3,
            "1" * 64,
        )
    )
    result = run(["dash"], share.script(entries), "--dest", "out", cwd=work)
    assert result.returncode == EXIT_SOME_FAILED, result.stdout + result.stderr
    out = result.stdout
    assert "Done: 4 downloaded (3.0 MiB), 0 already complete, 2 failed." in out
    assert "These files failed:" in out
    failed_part = out.split("These files failed:")[1]
    assert f"  {entries[1].path}: wrong SHA-256 checksum" in failed_part
    assert "  data/gone.txt: not on the server any more (HTTP 404)" in failed_part
    assert "Run the script again to retry them" in out
    dest = work / "out"
    assert not (dest / entries[1].path).exists()
    assert not (dest / "data/gone.txt").exists()
    assert not list(dest.rglob("*.part"))
    assert (dest / BIG).read_bytes() == FILES[BIG]
    assert_no_error_page(work)


def test_dry_run_downloads_nothing(share: Share, work: Path) -> None:
    result = run(["dash"], share.script(), "--dry-run", cwd=work)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.count("would download") == 5
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_destination_with_spaces_and_quotes(shell: list[str], share: Share, work: Path) -> None:
    dest = work / "my data" / "it's $HOME `x`"
    result = run(shell, share.script(), f"--dest={dest}", cwd=work)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert_complete(dest)
    assert sorted(p.name for p in work.iterdir()) == ["my data"]
    assert f"The files are in {dest}\n" in result.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_links_never_appear_on_a_command_line(
    shell: list[str], share: Share, work: Path, tmp_path: Path
) -> None:
    """Every local user can read another's command lines (ps, /proc/PID/cmdline): a presigned
    link there is a leaked password. A curl on PATH that records its arguments and then runs
    the real curl shows what the script passes."""
    real = shutil.which("curl")
    assert real is not None
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "curl-argv.log"
    shim = shim_dir / "curl"
    shim.write_text(
        "#!/bin/sh\n"
        f"for arg in \"$@\"; do printf '%s\\n' \"$arg\" >>'{log}'; done\n"
        f"printf '%s\\n' '-- end of a command line --' >>'{log}'\n"
        f"exec '{real}' \"$@\"\n"
    )
    shim.chmod(0o755)
    result = run(shell, share.script(), "--dest", "out", cwd=work, path_first=shim_dir)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert_complete(work / "out")
    argv = log.read_text().splitlines()
    calls = argv.count("-- end of a command line --")
    assert calls == sum(1 for data in FILES.values() if data)  # empty files need no download
    leaked = [a for a in argv if "://" in a or "x-amz-" in a.lower() or "signature" in a.lower()]
    assert leaked == []
    assert "--fail" in argv
    assert argv.count("--config") == calls
