"""Turning a metadata file's bytes into text, and saying honestly how that went.

The tracker Steward replaces opened files with the platform default and skipped every file that
failed ("these can mostly be ignored"), so curators never learnt which submissions were
unreadable. Here the rule is fixed and visible: a byte-order mark decides when there is one;
otherwise UTF-8 (strict); otherwise the source's declared fallback (``fallback_encoding``, e.g.
``latin-1`` for old spreadsheet exports), and the result says the fallback was needed; otherwise
the file is undecodable and the error says why. Bytes with NUL in them are binary, never text,
whatever the fallback: Latin-1 would "decode" any garbage.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    """The codec that decoded it (``utf-8``, ``utf-16`` from a byte-order mark, or the fallback)."""
    fallback: bool
    """True when UTF-8 failed and the source's fallback encoding was used."""


class Undecodable(ValueError):
    """Not text in any encoding the source allows; the message says where it went wrong."""


def _where(exc: UnicodeDecodeError) -> str:
    bad = exc.object[exc.start : exc.start + 1]
    return f"byte 0x{bad.hex()} at offset {exc.start}"


def decode(data: bytes, fallback: str | None = None) -> Decoded:
    """``data`` as text by the rule above; raises :class:`Undecodable` when it is not text."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data.decode(codec), codec.removesuffix("-sig"), fallback=False)
            except UnicodeDecodeError as exc:
                raise Undecodable(
                    f"starts with a {codec} byte-order mark but {_where(exc)} is not {codec}"
                ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise Undecodable(f"contains a NUL byte at offset {nul}: binary, not text")
    try:
        return Decoded(data.decode("utf-8"), "utf-8", fallback=False)
    except UnicodeDecodeError as exc:
        utf8_error = _where(exc)
    if not fallback:
        raise Undecodable(f"not UTF-8 ({utf8_error}) and the source declares no fallback_encoding")
    name = codecs.lookup(fallback).name
    try:
        return Decoded(data.decode(name), name, fallback=True)
    except UnicodeDecodeError as exc:
        raise Undecodable(f"neither UTF-8 ({utf8_error}) nor {name} ({_where(exc)})") from None
