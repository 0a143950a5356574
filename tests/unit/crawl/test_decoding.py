"""UTF-8 first, then the source's declared fallback; never a silent guess."""

from __future__ import annotations

import codecs

import pytest

from steward.crawl.decoding import Undecodable, decode

TEXT = "Investigation Title\tJörg's Müller-Thurgau study – café"


def test_utf8_needs_no_fallback() -> None:
    decoded = decode(TEXT.encode(), "latin-1")
    assert (decoded.text, decoded.encoding, decoded.fallback) == (TEXT, "utf-8", False)


def test_latin1_is_decoded_with_the_fallback_and_says_so() -> None:
    data = TEXT.replace("–", "-").encode("latin-1")
    decoded = decode(data, "latin-1")
    assert decoded.text == TEXT.replace("–", "-")
    assert decoded.fallback is True
    assert decoded.encoding == codecs.lookup("latin-1").name


def test_without_a_fallback_non_utf8_is_undecodable_and_says_where() -> None:
    data = "Jörg".encode("latin-1")
    with pytest.raises(Undecodable, match=r"byte 0xf6 at offset 1.*no fallback_encoding"):
        decode(data)


def test_a_fallback_that_fails_too_is_reported() -> None:
    with pytest.raises(Undecodable, match=r"neither UTF-8.*nor cp1252"):
        decode(b"abc \x81 def", "cp1252")  # 0x81 is undefined in cp1252


def test_binary_is_never_text_even_with_latin1() -> None:
    with pytest.raises(Undecodable, match="NUL byte at offset 3"):
        decode(b"\x89PN\x00G\x1a", "latin-1")


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_a_byte_order_mark_decides(codec: str) -> None:
    data = TEXT.encode(codec)
    if codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    decoded = decode(data)
    assert decoded.text == TEXT
    assert decoded.fallback is False
