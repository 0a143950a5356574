"""Every problem the bag validator reports says what was expected and what was found.

A person reads the message (``steward package validate`` prints it), not the detail's JSON
fields, so "Payload-Oxum file count differs (accepted: 205 files)" is not enough: the message
itself must say how many files the bag has. Real bags on disk, damaged in many ways at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from steward.errors import Detail
from steward.packaging import bag
from tests.unit.test_bag import FILES, build


def _says_expected_and_found(found: list[Detail]) -> None:
    assert found
    for d in found:
        assert d.accepted, f"no expectation in {d}"
        assert d.value is None or d.value in d.message, f"what was found is not in {d}"


def test_payload_oxum_says_both_counts(tmp_path: Path) -> None:
    out, _, summary = build(tmp_path, FILES)
    size, files = (int(n) for n in summary.payload_oxum.split("."))
    (out / "data/CUP/S2/calls.vcf.gz").unlink()
    found = {d.message: d for d in bag.validate_bag(out)}
    gone = len(b"##fileformat=VCFv4.2\n")
    assert (
        f"Payload-Oxum file count differs: it says {files} files; the bag has {files - 1} files"
        in (found)
    )
    assert (
        f"Payload-Oxum byte count differs: it says {size} bytes; the bag has {size - gone} bytes"
        in (found)
    )
    _says_expected_and_found(list(found.values()))


def test_a_bag_broken_in_many_ways(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES)
    (out / "bagit.txt").write_text("BagIt-Version: 2.0\nTag-File-Character-Encoding: Latin-1\n")
    info = out / "bag-info.txt"
    info.write_text(info.read_text() + "no colon here\n")
    sha = out / "manifest-sha256.txt"
    lines = sha.read_text().splitlines()
    sha.write_text(
        "\n".join(
            [
                *lines,
                lines[0],  # listed twice
                "nothex  data/CUP/x",
                f"{'a' * 64}  ../escape",
                "garbage",
            ]
        )
        + "\n"
    )
    md5 = out / "manifest-md5.txt"
    md5.write_text("\n".join(md5.read_text().splitlines()[1:]) + "\n")  # one file unlisted
    (out / "data/CUP/extra.bin").write_bytes(b"12345")
    os.symlink("/etc/hostname", out / "data/CUP/link")
    (out / "fetch.txt").write_text("nourl 5 data/CUP/x\nbroken\n")
    (out / "report.html").write_bytes(b"<p>changed</p>")
    target = out / "data/CUP/S1/L1_R1.fastq.gz"
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    found = bag.validate_bag(out, full=True)
    messages = "\n".join(d.message for d in found)
    for text in (
        "BagIt-Version is 2.0",
        "Tag-File-Character-Encoding is Latin-1",
        "not a 'Label: value' line: 'no colon here'",
        "is listed twice (first at line 1)",
        "'nothex' is not a sha256 checksum",
        "'../escape': path leaves the bag",
        "not a 'checksum  path' line: 'garbage'",
        "but not in manifest-md5.txt",
        "extra: 5 bytes in the bag but in no payload manifest",
        "a symbolic link (to /etc/hostname)",
        "not a URL: 'nourl'",
        "lists 'data/CUP/x', which no payload manifest lists",
        "not a 'URL LENGTH PATH' line: 'broken'",
        "sha256 differs from tagmanifest-sha256.txt (the file was changed): it is ",
        "sha256 differs from manifest-sha256.txt: it is ",
    ):
        assert text in messages
    _says_expected_and_found(found)


def test_tag_files_that_are_not_plain_utf8(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES)
    (out / "bag-info.txt").write_bytes(b"\xef\xbb\xbf" + (out / "bag-info.txt").read_bytes())
    (out / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n\xe9")
    info = out / "bag-info.txt"
    info.write_text(
        "\n".join(
            line if not line.startswith("Payload-Oxum") else "Payload-Oxum: lots"
            for line in info.read_text().splitlines()
        )
    )
    found = bag.validate_bag(out)
    messages = "\n".join(d.message for d in found)
    assert "is not UTF-8: byte 0xe9 at byte offset 54" in messages
    assert "malformed Payload-Oxum 'lots'" in messages
    _says_expected_and_found(found)


def test_a_missing_bag_says_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (only,) = bag.validate_bag(tmp_path / "file")
    assert only.message == "not a folder: there is a file at this path"
    _says_expected_and_found([only])
