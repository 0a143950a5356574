"""Include/exclude globs: one syntax for folders and object keys."""

from __future__ import annotations

import pytest

from steward.crawl.globs import GlobError, PathFilter, compile_glob


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("**", "a/b/c", True),
        ("a/**", "a", True),
        ("a/**", "a/b/c", True),
        ("a/**", "ab/c", False),
        ("**/b", "b", True),
        ("**/b", "x/y/b", True),
        ("**/b", "x/yb", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("raw/*.gz", "raw/r1.fq.gz", True),
        ("raw/*.gz", "raw/x/r1.fq.gz", False),  # * stays within a segment
        ("E-????-1", "E-MTAB-1", True),
        ("[!a]x", "bx", True),
        ("[!a]x", "ax", False),
        ("name with space/*", "name with space/ü.txt", True),
    ],
)
def test_glob_semantics(glob: str, path: str, matches: bool) -> None:
    assert (compile_glob(glob).match(path) is not None) is matches


def test_a_pattern_without_a_slash_matches_names_at_any_depth() -> None:
    paths = PathFilter(exclude=("tmp", "*.bak"))
    assert paths.wants_dir("a/b/tmp") is False
    assert paths.wants_dir("a/tmpx") is True
    assert paths.wants_file("deep/down/old.bak") is False
    assert paths.wants_file("deep/down/new.txt") is True


def test_include_selects_files_and_exclude_prunes_folders() -> None:
    paths = PathFilter(include=("**/*.txt",), exclude=("**/scratch/**",))
    assert paths.wants_file("E-1/a.txt")
    assert not paths.wants_file("E-1/a.fq")
    assert paths.wants_dir("E-1")  # includes never prune: deeper files may match
    assert not paths.wants_dir("E-1/scratch")
    assert not paths.wants_path("E-1/scratch/a.txt")  # keys: their folders are checked too
    assert paths.wants_path("E-1/a.txt")


def test_an_unclosed_class_is_refused() -> None:
    with pytest.raises(GlobError, match="never closed"):
        compile_glob("data/[abc")
