"""Finishing a bag: every tag file, then the tag manifests last (the bag's "complete" mark).

Each file is written to a temporary name and renamed, and ``tagmanifest-*.txt`` are removed
first and written last, so at any moment the bag is either visibly unfinished (no tag manifest)
or complete and consistent. Running it again after an interruption rewrites the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path

from steward.errors import Detail, ValidationFailed
from steward.packaging.bag_model import BagInfo, BagSummary, BuiltFile
from steward.packaging.bagit_files import (
    BAGIT_TXT,
    BUILD_DIR,
    CRATE_FILE,
    PAYLOAD_DIR,
    atomic_write,
    bag_info_text,
    fetch_text,
    human_size,
    is_manifest,
    manifest_text,
    payload_oxum,
    tag_relpath_reason,
    walk_files,
)
from steward.packaging.hashing import hash_bytes
from steward.packaging.rocrate import crate_bytes

PAYLOAD_ALGORITHMS = ("sha256", "md5")
_WRITTEN_LABELS = {
    "source-organization",
    "contact-name",
    "external-identifier",
    "external-description",
    "internal-sender-identifier",
    "bagging-date",
    "bag-software-agent",
    "bag-size",
    "payload-oxum",
}


def _software() -> str:
    try:
        return f"Steward {importlib_metadata.version('datasteward')}"
    except importlib_metadata.PackageNotFoundError:
        return "Steward"


def _check(
    bag_dir: Path, info: BagInfo, files: Sequence[BuiltFile], tags: Mapping[str, bytes], fetch: bool
) -> None:
    problems: list[Detail] = []
    data = bag_dir / PAYLOAD_DIR
    for name in tags:
        if (reason := tag_relpath_reason(name)) is not None:
            problems.append(Detail(reason, field=name, accepted="e.g. report.html"))
    for label in info.extra:
        if label.lower() in _WRITTEN_LABELS:
            problems.append(Detail("written by the bag builder itself", field=f"bag-info {label}"))
    seen: set[str] = set()
    for f in files:
        where = f"data/{f.relpath}"
        if f.relpath in seen or f.relpath == CRATE_FILE:
            problems.append(Detail("listed twice (or reserved)", field=where))
        seen.add(f.relpath)
        if fetch:
            if not f.fetch_url:
                problems.append(Detail("no URL for fetch.txt", field=where))
            continue
        try:
            size = (data / f.relpath).stat().st_size
        except OSError:
            problems.append(Detail("missing from data/; build the payload first", field=where))
            continue
        if size != f.size:
            problems.append(
                Detail(
                    "size differs from the build",
                    field=where,
                    value=str(size),
                    accepted=str(f.size),
                )
            )
    for rel in walk_files(data):
        if rel not in seen and rel != CRATE_FILE:
            problems.append(
                Detail("a file in data/ that is not part of the package", field=f"data/{rel}")
            )
    if problems:
        raise ValidationFailed("the bag cannot be finished", problems)


def _bag_info(info: BagInfo, oxum: str, total: int) -> bytes:
    fields = [
        ("Source-Organization", info.source_organisation),
        ("Contact-Name", info.created_by),
        ("External-Identifier", info.package_id),
        ("Internal-Sender-Identifier", info.name),
    ]
    if info.description:
        fields.append(("External-Description", info.description))
    fields += [
        ("Bagging-Date", info.created_at.date().isoformat()),
        ("Bag-Software-Agent", _software()),
        ("Bag-Size", human_size(total)),
        ("Payload-Oxum", oxum),
        *info.extra.items(),
    ]
    try:
        return bag_info_text(fields).encode()
    except ValueError as exc:
        raise ValidationFailed(
            "bag-info.txt cannot hold these labels",
            [Detail(str(exc), field="bag-info", accepted="letters, digits, '.', '_' and '-'")],
        ) from None


def _remove_stale_tags(bag_dir: Path, keep: set[str]) -> None:
    for rel in list(walk_files(bag_dir)):
        top = rel.split("/", 1)[0]
        if top in (PAYLOAD_DIR, BUILD_DIR) or rel in keep:
            continue
        (bag_dir / rel).unlink()
    for folder, _d, _f in sorted(os.walk(bag_dir), key=lambda t: -len(t[0])):
        rel = Path(folder).relative_to(bag_dir).as_posix()
        if rel != "." and rel.split("/", 1)[0] not in (PAYLOAD_DIR, BUILD_DIR):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def finish_bag(
    bag_dir: Path,
    info: BagInfo,
    files: Sequence[BuiltFile],
    *,
    tag_files: Mapping[str, bytes] | None = None,
    fetch: bool = False,
) -> BagSummary:
    """Write every tag file of the bag around the payload :func:`build_payload` made.

    ``tag_files`` are extra files for the bag's base directory (e.g. ``report.html``), covered
    by the tag manifests. With ``fetch`` the payload is listed in ``fetch.txt`` instead of being
    present. Raises :class:`ValidationFailed` listing every inconsistency found first.
    """
    bag_dir = Path(bag_dir)
    tags = dict(tag_files or {})
    _check(bag_dir, info, files, tags, fetch)
    for child in bag_dir.iterdir():
        if child.is_file() and child.name.startswith("tagmanifest-"):
            child.unlink()  # unfinished from here until the new ones are written

    crate = crate_bytes(info, files, fetch=fetch)
    atomic_write(bag_dir / PAYLOAD_DIR / CRATE_FILE, crate)
    crate_digests = hash_bytes(crate, PAYLOAD_ALGORITHMS)
    payload = [(f.relpath, f.size, {"sha256": f.sha256, "md5": f.md5}) for f in files]
    payload.append((CRATE_FILE, crate_digests.size, dict(crate_digests.hexdigests)))
    oxum = payload_oxum(size for _, size, _ in payload)
    total = sum(size for _, size, _ in payload)

    written: dict[str, bytes] = {}
    for alg in PAYLOAD_ALGORITHMS:
        written[f"manifest-{alg}.txt"] = manifest_text(
            (f"{PAYLOAD_DIR}/{rel}", digests[alg]) for rel, _, digests in payload
        ).encode()
    written["bagit.txt"] = BAGIT_TXT.encode()
    written["bag-info.txt"] = _bag_info(info, oxum, total)
    if fetch:
        written["fetch.txt"] = fetch_text(
            (f.fetch_url or "", f.size, f"{PAYLOAD_DIR}/{f.relpath}") for f in files
        ).encode()
    written.update(tags)
    tag_names = set(written) | {f"tagmanifest-{alg}.txt" for alg in PAYLOAD_ALGORITHMS}
    _remove_stale_tags(bag_dir, tag_names)
    for name, content in sorted(written.items()):
        atomic_write(bag_dir / name, content)

    digests = {name: hash_bytes(content, PAYLOAD_ALGORITHMS) for name, content in written.items()}
    # md5 first: tagmanifest-sha256.txt, written last, is the mark of a complete bag
    for alg in ("md5", "sha256"):
        atomic_write(
            bag_dir / f"tagmanifest-{alg}.txt",
            manifest_text((name, d.hexdigests[alg]) for name, d in digests.items()).encode(),
        )
    shutil.rmtree(bag_dir / BUILD_DIR, ignore_errors=True)
    return BagSummary(
        bag_dir=bag_dir,
        payload_files=len(payload),
        payload_bytes=total,
        payload_oxum=oxum,
        fetch_files=len(files) if fetch else 0,
        tag_files=tuple(sorted(tag_names)),
        bag_size=human_size(total),
    )


__all__ = ["PAYLOAD_ALGORITHMS", "finish_bag", "is_manifest"]
