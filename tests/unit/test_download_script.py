"""The generated download script, run for real under dash and bash --posix (no network here).

Everything that needs no server is checked here: quoting (names with quotes, ``$``, backticks
and non-ASCII survive byte for byte and run nothing), path safety at generation time and again
inside the script, usage and help, ``--list``, the expiry check before any download, the
``--dry-run`` report, the checksum-tool fallbacks and missing tools. Downloads with curl against
SeaweedFS are in ``tests/integration/test_download_script.py``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from steward.errors import ValidationFailed
from steward.packaging.script import (
    EXIT_EXPIRED,
    EXIT_MISSING_TOOL,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ScriptEntry,
    human_size,
    render_download_script,
    script_file_name,
    shell_quote,
    write_download_script,
)

SHELLS = [
    pytest.param(["dash"], id="dash"),
    pytest.param(["bash", "--posix"], id="bash-posix"),
]
NOW = datetime.now(UTC).replace(microsecond=0)
NASTY_NAMES = [
    "data/P1/fastq/sample 1_R1.fastq.gz",
    'data/it\'s a "quoted" name.txt',
    "data/$HOME and ${PATH} and $(touch pwned).txt",
    "data/`touch pwned2` backticks.txt",
    "data/ünïcødé/日本語 файл.txt",
    "data/back\\slash\\n and %s %d.txt",
    "data/glob * ? [a-z] ~ ; & | < > !.txt",
    "data/-starts-with-dash.txt",
    "bag-info.txt",
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(path: str, data: bytes = b"x", url: str | None = None) -> ScriptEntry:
    return ScriptEntry(
        path=path,
        url=url or "https://s3.example.org/bucket/key?X-Amz-Signature=SECRETSIG&a='b'",
        size=len(data),
        sha256=sha(data),
    )


def render(
    entries: Sequence[ScriptEntry],
    *,
    package_name: str = "P1-fastq",
    created_by: str = "alice@example.org",
    expires_at: datetime | None = None,
    created_at: datetime | None = None,
) -> str:
    return render_download_script(
        entries,
        package_name=package_name,
        package_id="pkg_01J0000000000000000000000",
        share_id="shr_01J0000000000000000000000",
        created_at=created_at or NOW,
        expires_at=expires_at or NOW + timedelta(days=7),
        created_by=created_by,
    )


def save(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "download.sh"
    path.write_text(text, encoding="utf-8")
    return path


def run(
    shell: list[str],
    script: Path,
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(shell[0])
    if exe is None:
        pytest.fail(f"{shell[0]} is not installed (.ci/run installs it)")
    return subprocess.run(
        [exe, *shell[1:], str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for folders): to prove nothing changed."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty working directory for the script (its default destination lands here)."""
    w = tmp_path / "cwd"
    w.mkdir()
    return w


# -- quoting ------------------------------------------------------------------------------


def test_shell_quote_round_trips_through_sh() -> None:
    for value in [*NASTY_NAMES, "", "'", "''", "a'b'c", "\\'"]:
        out = subprocess.run(
            ["sh", "-c", f"printf '%s' {shell_quote(value)}"],
            capture_output=True,
            check=True,
        ).stdout
        assert out.decode("utf-8") == value


@pytest.mark.parametrize("shell", SHELLS)
def test_nasty_names_parse_list_exactly_and_run_nothing(
    shell: list[str], tmp_path: Path, work: Path
) -> None:
    entries = [entry(name, name.encode()) for name in NASTY_NAMES]
    # a URL full of shell syntax too
    entries[1] = replace(entries[1], url="https://h/b/k?q=$(touch${IFS}pwned3)&r=`id`&s='x'")
    script = save(
        tmp_path,
        render(entries, package_name="it's $P1 `x`", created_by="O'Brien $(touch pwned4)"),
    )
    parsed = run([*shell, "-n"], script, cwd=work)
    assert parsed.returncode == 0, parsed.stderr

    listed = run(shell, script, "--list", cwd=work)
    assert listed.returncode == EXIT_OK, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows == [[e.path, str(e.size), e.sha256] for e in entries]

    helped = run(shell, script, "--help", cwd=work)
    assert helped.returncode == EXIT_OK
    assert "it's $P1 `x`" in helped.stdout
    assert "O'Brien $(touch pwned4)" in helped.stdout

    dry = run(shell, script, "--dry-run", cwd=work)
    assert dry.returncode == EXIT_OK, dry.stderr
    for name in NASTY_NAMES:
        assert f"{name} (" in dry.stdout
    assert list(work.iterdir()) == []  # no "pwned" files, no destination folder
    assert not list(tmp_path.glob("pwned*"))


def test_script_bytes_are_utf8_and_values_appear_quoted() -> None:
    text = render([entry("data/ü x.txt")])
    assert "entry 'data/ü x.txt' 1 " in text
    assert "'https://s3.example.org/bucket/key?X-Amz-Signature=SECRETSIG&a='\\''b'\\'''" in text
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -eu\n" in text


def test_header_says_what_for_whom_and_until_when() -> None:
    expires = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    text = render_download_script(
        [entry("a.txt", b"12345")],
        package_name="P1-fastq",
        package_id="pkg_1",
        share_id="shr_1",
        created_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        expires_at=expires,
        created_by="alice@example.org",
        recipient="Bob at Lab X",
    )
    header = text.split("\nset -eu\n")[0]
    for expected in (
        "P1-fastq",
        "pkg_1",
        "shr_1",
        "alice@example.org",
        "Bob at Lab X",
        "2026-11-30 12:00 UTC",
        "2026-11-23 12:00 UTC",
        "--dest DIR",
        "--dry-run",
        "--list",
        f"sh {script_file_name('P1-fastq')}",
        "1 (5 B)",
    ):
        assert expected in header
    assert all(line.startswith("#") for line in header.splitlines())
    assert f"EXPIRES_EPOCH={int(expires.timestamp())}\n" in text


def test_shellcheck_finds_nothing(tmp_path: Path) -> None:
    script = save(tmp_path, render([entry(n, n.encode()) for n in NASTY_NAMES]))
    result = subprocess.run(
        ["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


# -- refusals at generation time -----------------------------------------------------------


def test_unsafe_paths_are_refused_all_at_once() -> None:
    bad = ["/etc/passwd", "../escape.txt", "data/../../x", "a//b", "./a", "a/", "", "a\nb", "c\td"]
    entries = [entry("ok.txt"), *(entry(p) for p in bad)]
    with pytest.raises(ValidationFailed) as caught:
        render(entries)
    details = caught.value.details
    assert sorted(d.row for d in details if d.row is not None) == list(range(2, len(bad) + 2))
    assert all(d.field == "path" for d in details)
    assert any(d.message == "absolute path" for d in details)


def test_every_bad_field_is_reported_and_links_are_redacted() -> None:
    entries = [
        ScriptEntry("a.txt", "file:///etc/passwd", 1, sha(b"x")),
        ScriptEntry("b.txt", "https://h/k?X-Amz-Signature=SECRETSIG with space", 1, sha(b"x")),
        ScriptEntry("c.txt", "https://h/k", -1, sha(b"x")),
        ScriptEntry("d.txt", "https://h/k", True, sha(b"x")),
        ScriptEntry("e.txt", "https://h/k", 1, "abc"),
        ScriptEntry("e.txt", "https://h/k", 1, sha(b"x")),  # duplicate
    ]
    with pytest.raises(ValidationFailed) as caught:
        render(entries)
    found = {(d.row, d.field) for d in caught.value.details}
    assert found == {(1, "url"), (2, "url"), (3, "size"), (4, "size"), (5, "sha256"), (6, "path")}
    shown = " ".join(f"{d} {d.value}" for d in caught.value.details)
    assert "SECRETSIG" not in shown
    assert "SECRETSIG" not in str(caught.value)


def test_clashing_paths_are_refused() -> None:
    # "a" is a file and a folder; "b.txt.part" is where "b.txt" would be downloaded to.
    entries = [entry("a"), entry("a/x.txt"), entry("b.txt"), entry("b.txt.part")]
    with pytest.raises(ValidationFailed) as caught:
        render(entries)
    rows = sorted(d.row for d in caught.value.details if d.row is not None)
    assert rows == [2, 4]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"package_name": "a/b"}, "package_name"),
        ({"package_name": ".."}, "package_name"),
        ({"package_name": ""}, "package_name"),
        ({"created_by": "x\ny"}, "created_by"),
        ({"share_id": "shr\r"}, "share_id"),
        ({"created_at": datetime(2026, 1, 1)}, "created_at"),  # naive on purpose
        ({"expires_at": NOW - timedelta(seconds=1)}, "expires_at"),
    ],
)
def test_bad_metadata_is_refused(changes: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "package_name": "P1",
        "package_id": "pkg_1",
        "share_id": "shr_1",
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=1),
        "created_by": "alice",
        **changes,
    }
    with pytest.raises(ValidationFailed) as caught:
        render_download_script([entry("a.txt")], **args)  # type: ignore[arg-type]
    assert [d.field for d in caught.value.details] == [field]


def test_no_files_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        render([])


# -- defence in depth: an edited script still refuses unsafe paths --------------------------


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/absolute-escape.txt", "a/./../../b"])
def test_edited_script_refuses_unsafe_paths(
    shell: list[str], evil: str, tmp_path: Path, work: Path
) -> None:
    text = render([entry("placeholder.txt")]).replace(
        "entry 'placeholder.txt'", f"entry {shell_quote(evil)}"
    )
    script = save(tmp_path, text)
    for args in (["--dry-run"], ["--dest", "out"]):
        result = run(shell, script, *args, cwd=work)
        assert result.returncode == EXIT_SOME_FAILED, result.stderr
        assert "refused: unsafe path" in result.stdout
        assert "These files failed:" in result.stdout
    assert tree(tmp_path) == {
        "cwd": None,
        "cwd/out": None,
        "download.sh": text.encode(),
    }


# -- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_help_documents_options_and_exit_codes(
    shell: list[str], tmp_path: Path, work: Path
) -> None:
    script = save(tmp_path, render([entry("a.txt", b"1" * 1536)]))
    for flag in ("--help", "-h"):
        result = run(shell, script, flag, cwd=work)
        assert result.returncode == EXIT_OK
        out = result.stdout
        for text in ("--dest DIR", "--dry-run", "--list", "--help", "./P1-fastq"):
            assert text in out
        for code in (EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_EXPIRED, EXIT_MISSING_TOOL):
            assert f"\n  {code}  " in out
        assert "1 files, 1.5 KiB" in out
        assert (NOW + timedelta(days=7)).strftime("%Y-%m-%d %H:%M UTC") in out
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option: --bogus"),
        (["--dest"], "--dest needs a folder name"),
        (["--dest", ""], "--dest needs a folder name"),
        (["--dest="], "--dest needs a folder name"),
        (["--list", "--dry-run"], "do not go together"),
        (["extra"], "unknown option: extra"),
    ],
)
def test_usage_errors_exit_2(
    shell: list[str], args: list[str], message: str, tmp_path: Path, work: Path
) -> None:
    script = save(tmp_path, render([entry("a.txt")]))
    result = run(shell, script, *args, cwd=work)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr
    assert "--help" in result.stderr
    assert list(work.iterdir()) == []


def test_list_is_tab_separated_with_lowercase_checksums(tmp_path: Path, work: Path) -> None:
    upper = ScriptEntry("x/y.bin", "https://h/k", 1234, sha(b"y").upper())
    script = save(tmp_path, render([entry("a.txt", b"abc"), upper]))
    result = run(["dash"], script, "--list", cwd=work)
    assert result.returncode == EXIT_OK
    assert result.stdout == f"a.txt\t3\t{sha(b'abc')}\nx/y.bin\t1234\t{sha(b'y')}\n"


@pytest.mark.parametrize(
    "size", [0, 1, 1023, 1024, 1536, 10 * 1024**2 + 1, 5 * 1024**4, 3 * 1024**5]
)
def test_python_and_script_agree_on_human_sizes(size: int, tmp_path: Path, work: Path) -> None:
    script = save(tmp_path, render([ScriptEntry("a", "https://h/k", size, sha(b""))]))
    result = run(["dash"], script, "--help", cwd=work)
    assert f"1 files, {human_size(size)}." in result.stdout
    assert f"#   files:    1 ({human_size(size)})" in script.read_text()


# -- expiry before anything happens ----------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_expired_script_says_so_and_touches_nothing(
    shell: list[str], tmp_path: Path, work: Path
) -> None:
    expired = datetime(2024, 11, 30, 12, 0, tzinfo=UTC)
    text = render(
        [entry("data/a.txt", b"abc")],
        created_at=expired - timedelta(days=7),
        expires_at=expired,
        created_by="Dana Steward",
    )
    script = save(tmp_path, text)
    (work / "P1-fastq" / "data").mkdir(parents=True)
    (work / "P1-fastq" / "data" / "a.txt.part").write_bytes(b"a")
    before = tree(work)
    for args in ([], ["--dry-run"], ["--dest", "elsewhere"]):
        result = run(shell, script, *args, cwd=work)
        assert result.returncode == EXIT_EXPIRED
        assert (
            "This link expired on 2024-11-30 12:00 UTC; ask Dana Steward for a new script."
            in result.stderr
        )
        assert tree(work) == before
    listed = run(shell, script, "--list", cwd=work)  # listing needs no link
    assert listed.returncode == EXIT_OK
    assert listed.stdout.startswith("data/a.txt\t3\t")


# -- dry run ------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_dry_run_reports_each_file_and_changes_nothing(
    shell: list[str], tmp_path: Path, work: Path
) -> None:
    files = {
        "data/ok.txt": b"complete and right",
        "data/bad.txt": b"the right content",
        "data/short.txt": b"the right length",
        "data/partial.bin": b"0123456789" * 100,
        "data/new.txt": b"not there yet",
    }
    script = save(tmp_path, render([entry(k, v) for k, v in files.items()]))
    dest = work / "my dest"
    (dest / "data").mkdir(parents=True)
    (dest / "data/ok.txt").write_bytes(files["data/ok.txt"])
    (dest / "data/bad.txt").write_bytes(b"the wrong content")  # same length, other bytes
    (dest / "data/short.txt").write_bytes(b"short")
    (dest / "data/partial.bin.part").write_bytes(files["data/partial.bin"][:300])
    before = tree(work)

    result = run(shell, script, "--dry-run", "--dest", str(dest), cwd=work)
    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    assert "Dry run: nothing will be downloaded or changed." in out
    assert "[1/5] data/ok.txt (18 B) ... ok, already downloaded" in out
    assert "[2/5] data/bad.txt (17 B) ... would download again (wrong SHA-256 checksum)" in out
    assert "[3/5] data/short.txt (16 B) ... would download again (wrong size: 5 bytes" in out
    assert "[4/5] data/partial.bin (1000 B) ... would resume from 300 B" in out
    assert "[5/5] data/new.txt (13 B) ... would download" in out
    assert "Dry run: 4 files" in out
    assert "1 already complete" in out
    assert tree(work) == before


@pytest.mark.parametrize("tool", ["sha256sum", "shasum", "openssl"])
def test_checksum_tool_fallbacks(tool: str, tmp_path: Path, work: Path) -> None:
    """macOS has shasum, minimal systems may only have openssl: each must give the same answer."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (.ci/run installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("awk", "wc", "tr", "sed", "date", "cat", "mkdir", "rm", "mv", "curl", tool):
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    if tool == "shasum":  # a perl script: it needs perl on PATH
        perl = shutil.which("perl")
        assert perl
        (bin_dir / "perl").symlink_to(perl)
    good, bad = b"right bytes\n", b"wrong bytes\n"
    script = save(tmp_path, render([entry("good.txt", good), entry("bad.txt", good)]))
    dest = work / "d"
    dest.mkdir()
    (dest / "good.txt").write_bytes(good)
    (dest / "bad.txt").write_bytes(bad)
    result = run(["dash"], script, "--dry-run", "--dest", "d", cwd=work, env={"PATH": str(bin_dir)})
    assert result.returncode == EXIT_OK, result.stderr
    assert "good.txt (12 B) ... ok, already downloaded" in result.stdout
    assert "bad.txt (12 B) ... would download again (wrong SHA-256 checksum)" in result.stdout


def test_missing_tools_exit_4(tmp_path: Path, work: Path) -> None:
    script = save(tmp_path, render([entry("a.txt")]))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run(["dash"], script, cwd=work, env={"PATH": str(empty)})
    assert result.returncode == EXIT_MISSING_TOOL
    assert "sha256sum, shasum or openssl" in result.stderr

    only_sha = tmp_path / "sha-bin"
    only_sha.mkdir()
    found = shutil.which("sha256sum")
    assert found
    (only_sha / "sha256sum").symlink_to(found)
    result = run(["dash"], script, cwd=work, env={"PATH": str(only_sha)})
    assert result.returncode == EXIT_MISSING_TOOL
    assert "needs curl" in result.stderr
    assert list(work.iterdir()) == []


# -- writing the file --------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_write_is_atomic_private_and_never_overwrites_unasked(tmp_path: Path, umask: int) -> None:
    """The links work like passwords: 0700 whatever the umask, and an existing file (another
    recipient's script, say) is replaced only when asked."""
    target = tmp_path / "out" / "download-P1.sh"
    target.parent.mkdir()
    target.write_text("old")
    kwargs = {
        "package_name": "P1",
        "package_id": "pkg_1",
        "share_id": "shr_1",
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=7),
        "created_by": "alice",
    }
    with pytest.raises(ValidationFailed) as refused:
        write_download_script([entry("a.txt")], path=target, **kwargs)  # type: ignore[arg-type]
    assert refused.value.details[0].field == "path"
    assert "already exists" in refused.value.message
    assert target.read_text() == "old"
    old_umask = os.umask(umask)
    try:
        written = write_download_script(
            [entry("a.txt")],
            path=target,
            overwrite=True,
            **kwargs,  # type: ignore[arg-type]
        )
    finally:
        os.umask(old_umask)
    assert written == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    text = target.read_text()
    assert text == render_download_script([entry("a.txt")], **kwargs, script_name=target.name)  # type: ignore[arg-type]
    assert "sh download-P1.sh --dest DIR" in text
    assert sorted(os.listdir(target.parent)) == ["download-P1.sh"]  # no temp file left

    with pytest.raises(ValidationFailed) as caught:
        write_download_script([entry("a.txt")], path=tmp_path / "missing" / "x.sh", **kwargs)  # type: ignore[arg-type]
    assert caught.value.details[0].field == "path"
    with pytest.raises(ValidationFailed):  # bad input: nothing written, old file kept
        write_download_script([entry("/abs")], path=target, overwrite=True, **kwargs)  # type: ignore[arg-type]
    assert target.read_text() == text
