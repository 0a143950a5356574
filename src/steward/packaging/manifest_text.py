"""Turning a text manifest's bytes into text, and naming the encoding when they are not UTF-8.

Manifests come out of LIMS exports and spreadsheets, and the wrong encoding is the commonest way
they break. Read as UTF-8 regardless, a UTF-16 file without a byte-order mark decodes "fine"
(its NUL bytes are valid UTF-8) and then has no recognisable column, and a stray Latin-1 byte
hides its line, so the user is told about missing columns or a header without rows. Here the
encoding problem itself is named instead: which encoding was tried (UTF-8), where it failed
(line and byte offset), what the bytes look like, and what is accepted.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from steward.errors import Detail

ACCEPTED_ENCODING = (
    "UTF-8 text, with or without a byte-order mark; save or export the manifest as UTF-8 "
    "(in Excel: 'CSV UTF-8')"
)

_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "UTF-32 little-endian"),
    (codecs.BOM_UTF32_BE, "UTF-32 big-endian"),
    (codecs.BOM_UTF16_LE, "UTF-16 little-endian"),
    (codecs.BOM_UTF16_BE, "UTF-16 big-endian"),
)
_BINARY = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?), not text", ".xlsx"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 (.xls) workbook, not text", ".xlsx"),
    (b"%PDF", "a PDF document, not text", None),
)


@dataclass
class Decoded:
    """The text (unreadable lines replaced), which lines to skip, and whether any text is
    usable at all."""

    text: str = ""
    bad_lines: set[int] = field(default_factory=set)
    usable: bool = True


def _first_bytes(raw: bytes, n: int = 8) -> str:
    return "first bytes: " + raw[:n].hex(" ")


def _wide_encoding(raw: bytes) -> str | None:
    """UTF-16/32 without a byte-order mark: ASCII text in them has NULs in fixed positions."""
    sample = raw[:4096]
    if len(sample) < 4 or sample.count(0) * 3 < len(sample):
        return None
    by_position = [sample[i::4].count(0) / max(1, len(sample[i::4])) for i in range(4)]
    lots = [share > 0.7 for share in by_position]
    none = [share < 0.2 for share in by_position]
    guesses = {
        "UTF-32 little-endian": (none[0], lots[1], lots[2], lots[3]),
        "UTF-32 big-endian": (lots[0], lots[1], lots[2], none[3]),
        "UTF-16 little-endian": (none[0], lots[1], none[2], lots[3]),
        "UTF-16 big-endian": (lots[0], none[1], lots[2], none[3]),
    }
    return next((name for name, signs in guesses.items() if all(signs)), None)


def _problem(label: str, message: str, *, row: int, value: str | None = None) -> Detail:
    return Detail(message, field=label, row=row, value=value, accepted=ACCEPTED_ENCODING)


def decode(raw: bytes, label: str, problems: list[Detail]) -> Decoded:
    """Decode ``raw`` as UTF-8; every failure becomes a detail naming what and where."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            problems.append(
                _problem(
                    label,
                    f"the file is {name} text (it starts with that encoding's byte-order mark "
                    f"{bom.hex(' ')}); manifests are read as UTF-8, so it was not read",
                    row=1,
                    value=_first_bytes(raw),
                )
            )
            return Decoded(usable=False)
    for magic, what, suffix in _BINARY:
        if raw.startswith(magic):
            hint = f"; if it is a workbook, name it {suffix}" if suffix else ""
            problems.append(
                _problem(
                    label,
                    f"the file is {what}{hint}; a .csv/.tsv/.txt manifest is read as UTF-8 text",
                    row=1,
                    value=_first_bytes(raw),
                )
            )
            return Decoded(usable=False)
    wide = _wide_encoding(raw)
    if wide is not None:
        first = raw.index(0)
        problems.append(
            _problem(
                label,
                f"the file looks like {wide} text without a byte-order mark (NUL bytes in "
                f"every {'second' if 'UTF-16' in wide else 'fourth'} position, the first at "
                f"byte offset {first}); it was read as UTF-8, in which a text manifest has no "
                "NUL bytes, so it was not read",
                row=1,
                value=_first_bytes(raw),
            )
        )
        return Decoded(usable=False)
    body = raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw
    skipped = len(raw) - len(body)
    try:
        return Decoded(body.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    decoded = Decoded(body.decode("utf-8", errors="replace"))
    offset = skipped
    for number, line in enumerate(body.split(b"\n"), start=1):
        message = _line_problem(line, offset)
        if message is not None:
            decoded.bad_lines.add(number)
            shown = line.rstrip(b"\r").decode("cp1252", errors="replace")
            problems.append(_problem(label, message, row=number, value=shown[:200]))
        offset += len(line) + 1
    return decoded


def _line_problem(line: bytes, offset: int) -> str | None:
    """What is wrong with one line's bytes (``offset``: where the line starts in the file)."""
    try:
        line.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        bad = exc
    byte = line[bad.start]
    guess = bytes([byte]).decode("cp1252", errors="replace")
    looks = (
        f"; in Windows-1252/Latin-1 it is {guess!r}, so the file was probably saved in that "
        "encoding"
        if byte >= 0x80 and guess != "\ufffd"
        else ""
    )
    return (
        f"byte 0x{byte:02x} is not UTF-8 text, the encoding manifests are read in (byte offset "
        f"{offset + bad.start} of the file, position {bad.start + 1} of the line){looks}"
    )
