"""Helpers for the crawl tests: source configs, trees on disk, and dropping root's privileges.

Permission-denied folders cannot be tested as root (root reads everything), and CI runs as
root; :func:`unprivileged` switches the *effective* user and group to ``nobody`` for the block
(the real user stays root, so the switch back is allowed), which makes the kernel check
permissions for real. Trees for it are made under a world-readable folder
(:func:`shared_tmp`), since pytest's own temporary folders are private to root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from steward.crawl.config import SourceConfig, parse_crawl_config

NOBODY = 65534
ACCESSION = r"^E-[A-Z]{4}-\d+$"
PROJECT = "p1"
"""The project test sources feed (the consortium fixture's)."""


def source(**fields: Any) -> SourceConfig:
    """One validated source (defaults: a dataset per folder named like E-MTAB-1)."""
    entry: dict[str, Any] = {"stage": "loading", "pattern": ACCESSION, "project": PROJECT, **fields}
    return parse_crawl_config({"crawl": {"sources": [entry]}}).sources[0]


def write_tree(root: Path, files: Mapping[str, bytes | str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


@contextlib.contextmanager
def shared_tmp() -> Iterator[Path]:
    """A temporary folder every user may enter (for trees read as ``nobody``)."""
    root = Path(tempfile.mkdtemp(prefix="steward-crawl-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for path in [root, *root.rglob("*")]:
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block with permissions checked as for an ordinary user."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def idf(
    title: str,
    *,
    secondary: tuple[str, ...] = (),
    curator: str = "Marie Curie",
    experiment_type: str = "RNA-seq of coding RNA",
) -> str:
    """A small MAGE-TAB IDF (tab-separated, as the spec writes it)."""
    first, _, last = curator.partition(" ")
    rows = [
        "MAGE-TAB Version\t1.1",
        f"Investigation Title\t{title}",
        f"Comment[AEExperimentType]\t{experiment_type}",
        f"Person Last Name\t{last}",
        f"Person First Name\t{first}",
        "Person Roles\tcurator",
    ]
    if secondary:
        rows.append("Comment[SecondaryAccession]\t" + "\t".join(secondary))
    return "\n".join(rows) + "\n"


def sdrf(*organisms: str) -> str:
    """A small MAGE-TAB SDRF: one source per organism."""
    rows = ["Source Name\tCharacteristics[organism]\tAssay Name"]
    rows += [f"s{i}\t{organism}\trun {i}" for i, organism in enumerate(organisms, 1)]
    return "\n".join(rows) + "\n"


def dataset_files(accession: str, title: str, *organisms: str, **idf_fields: Any) -> dict[str, str]:
    """A dataset folder's files: its IDF, its SDRF and a data file."""
    return {
        f"{accession}/{accession}.idf.txt": idf(title, **idf_fields),
        f"{accession}/{accession}.sdrf.txt": sdrf(*(organisms or ("Homo sapiens",))),
        f"{accession}/raw/run1.fq": "ACGT\n",
    }
