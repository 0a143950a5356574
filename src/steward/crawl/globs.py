"""Include/exclude globs over paths relative to a source's root.

One syntax for folders, S3 prefixes and file names, so a config means the same thing whatever
the storage: ``*`` and ``?`` stay within one path segment, ``**`` spans any number of segments
(``raw/**``, ``**/tmp/**``), ``[abc]``/``[!abc]`` are character classes. A pattern without a
``/`` matches a *name* at any depth (``*.bak``, ``tmp``), as in ``.gitignore``, because that is
what people write when they mean "never these files".

An excluded folder is not entered at all (its files are never listed); include patterns only
select files, since a folder that matches no include may still hold files that do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


class GlobError(ValueError):
    """A pattern that cannot be understood (an unclosed ``[``)."""


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regular expression a glob stands for, matched against a whole relative path."""
    if not pattern:
        raise GlobError("an empty pattern matches nothing")
    segments = pattern.strip("/").split("/")
    last = len(segments) - 1
    out = ""
    for i, segment in enumerate(segments):
        if segment == "**":
            if i == 0:
                out += ".*" if i == last else "(?:[^/]*/)*"  # "**/b": b at any depth
            elif i == last:
                out += "(?:/.*)?"  # "a/**": a itself and everything below it
            else:
                out += "(?:/[^/]*)*/"  # "a/**/b": b directly in a or any depth below
            continue
        if i > 0 and segments[i - 1] != "**":
            out += "/"
        out += _segment(segment, pattern)
    return re.compile(out + r"\Z", re.DOTALL)


def _segment(segment: str, pattern: str) -> str:
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise GlobError(f"{pattern!r}: '[' is never closed")
            body = segment[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\").replace("/", "") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _matches(pattern: str, rel: str) -> bool:
    if "/" in pattern.strip("/"):
        return compile_glob(pattern).match(rel) is not None
    name = rel.rsplit("/", 1)[-1]
    return compile_glob(pattern).match(name) is not None


@dataclass(frozen=True)
class PathFilter:
    """Which files and folders below a source's root are listed."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants_dir(self, rel: str) -> bool:
        """False when an exclude pattern names this folder (or one of its segments)."""
        if not self.exclude or not rel:
            return True
        return not any(_matches(p, rel) for p in self.exclude)

    def wants_file(self, rel: str) -> bool:
        """True when an include pattern (any file, with none) names it and no exclude does."""
        if self.include and not any(_matches(p, rel) for p in self.include):
            return False
        return not any(_matches(p, rel) for p in self.exclude)

    def wants_path(self, rel: str) -> bool:
        """``wants_file`` for a path whose folders have not been checked yet (object keys)."""
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            if not self.wants_dir("/".join(parts[:depth])):
                return False
        return self.wants_file(rel)
