"""Checksum sidecars as people and tools write them, the stored form, and S3 ETags."""

from __future__ import annotations

import hashlib
import io

import pytest

from steward.crawl.checksums import (
    SIDECAR_LIMIT,
    SidecarError,
    digest_stream,
    etag_md5,
    parse_sidecar,
    parse_stored,
    sidecar_of,
    stored,
)

DATA = b"ACGT\n"
MD5 = hashlib.md5(DATA).hexdigest()
SHA = hashlib.sha256(DATA).hexdigest()


def test_a_sidecar_is_named_after_its_data_file() -> None:
    assert sidecar_of("raw/r1.bam.md5") == ("raw/r1.bam", "md5")
    assert sidecar_of("raw/r1.bam.MD5") == ("raw/r1.bam", "md5")
    assert sidecar_of("raw/r1.bam.sha256") == ("raw/r1.bam", "sha256")
    assert sidecar_of("raw/r1.bam") is None
    assert sidecar_of("raw/.md5") is None
    assert sidecar_of("raw/r1.md5sum") is None


@pytest.mark.parametrize(
    "text",
    [
        MD5,  # the digest alone, no newline
        MD5.upper() + "\n",  # upper case
        f"{MD5}  r1.bam\n",  # md5sum's text mode
        f"{MD5} *r1.bam\n",  # md5sum's binary mode
        f"{MD5}  ./raw/r1.bam\n",  # a path: the name is what counts
        f"{MD5}\tr1.bam\r\n",  # a tab, Windows line ends
        f"\\{MD5}  r1.bam\n",  # md5sum's escaped-name marker
        f"MD5 (r1.bam) = {MD5}\n",  # BSD
        f"{'0' * 32}  other.bam\n{MD5}  r1.bam\n",  # a list: the line naming this file
    ],
)
def test_sidecars_as_tools_write_them(text: str) -> None:
    assert parse_sidecar(text.encode(), "raw/r1.bam", "md5") == MD5


def test_a_sha256_sidecar() -> None:
    assert parse_sidecar(f"{SHA}  r1.bam\n".encode(), "r1.bam", "sha256") == SHA
    with pytest.raises(SidecarError, match="is not an sha256 checksum"):
        parse_sidecar(f"{MD5}\n".encode(), "r1.bam", "sha256")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"see the lab notebook\n", "'see' is not an md5 checksum"),
        (f"{MD5[:-1]}g\n".encode(), "is not an md5 checksum"),
        (f"{MD5}  other.bam\n".encode(), "it names other.bam, not r1.bam"),
        (b"\xff\xfe" + MD5.encode(), "not UTF-8"),
        (b"0" * (SIDECAR_LIMIT + 1), "too large"),
    ],
)
def test_a_sidecar_that_says_nothing_usable_says_why(data: bytes, why: str) -> None:
    with pytest.raises(SidecarError, match=why):
        parse_sidecar(data, "raw/r1.bam", "md5")


def test_the_stored_form_is_algorithm_and_lower_case_hex() -> None:
    assert stored("md5", MD5.upper()) == f"md5:{MD5}"
    assert parse_stored(f"md5:{MD5}") == ("md5", MD5)
    assert parse_stored(f"sha256:{SHA.upper()}") == ("sha256", SHA)
    for bad in (None, "", MD5, f"crc32:{MD5}", f"md5:{SHA}", "md5:" + "x" * 32):
        assert parse_stored(bad) is None


def test_only_a_single_part_etag_is_an_md5() -> None:
    assert etag_md5(MD5) == MD5
    assert etag_md5(f'"{MD5.upper()}"') == MD5
    assert etag_md5(f"{MD5}-3") is None  # multipart
    assert etag_md5(None) is None
    assert etag_md5("abc") is None


def test_a_stream_is_read_once_for_every_algorithm() -> None:
    seen: list[int] = []
    found = digest_stream(io.BytesIO(DATA * 3), ["md5", "sha256", "md5"], seen.append, chunk=4)
    assert found.values == {
        "md5": hashlib.md5(DATA * 3).hexdigest(),
        "sha256": hashlib.sha256(DATA * 3).hexdigest(),
    }
    assert found.size == sum(seen) == 15
    assert seen == [4, 4, 4, 3]
