"""What an extractor is: a named reader of some metadata files that returns plain fields.

Extractors get *text* (decoding is the caller's job, so every extractor follows the same
UTF-8-then-fallback rule and every fallback is recorded in one place) and return JSON-ready
fields. A file an extractor cannot make sense of raises :class:`ExtractionFailed` with a message
that names the line; the caller records it against the file, never skips it silently.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import translate
from functools import cache
from typing import Any, ClassVar


class ExtractionFailed(ValueError):
    """The file is broken or not of the kind the extractor reads."""


@dataclass(frozen=True)
class Extraction:
    """Fields read from one file, and notes about what was odd but not fatal."""

    fields: Mapping[str, Any]
    notes: tuple[str, ...] = field(default=())


@cache
def _names(globs: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One compiled, case-blind pattern for all of an extractor's globs: asked of every file
    of every dataset listed, so not a ``fnmatch`` per glob per file."""
    return re.compile("|".join(translate(g) for g in globs) or "(?!)", re.IGNORECASE).match


def any_wants(extractors: Sequence[Extractor]) -> Callable[[str], bool]:
    """Whether any of ``extractors`` reads a file (by its path): one pattern for them all."""
    match = _names(tuple(g for e in extractors for g in e.globs))

    def wanted(path: str) -> bool:
        return match(path.rsplit("/", 1)[-1]) is not None

    return wanted


class Extractor(ABC):
    """A metadata reader, registered under ``name``; reads the files its ``globs`` name.

    Globs are matched against the file's *name* (not its folder), ignoring case, because
    submitters spell ``.IDF.txt`` as often as ``.idf.txt``.
    """

    name: ClassVar[str]
    globs: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""

    def wants(self, path: str) -> bool:
        """True for a file this extractor reads (by its name)."""
        return _names(self.globs)(path.rsplit("/", 1)[-1]) is not None

    @abstractmethod
    def extract(self, text: str, *, path: str) -> Extraction:
        """The fields ``text`` holds; raise :class:`ExtractionFailed` when it is unusable."""

    def __repr__(self) -> str:
        return f"<extractor {self.name}>"
