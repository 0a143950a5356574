"""Checking a bag on disk: every problem, each naming the path, what was expected and found.

Fast mode checks completeness — declarations, manifests, every listed file present, no file
that no manifest lists, Payload-Oxum, tag-file checksums (a few KB, so always checked). Full
mode also recomputes every payload checksum with every manifest's algorithm, reading each file
once, in a thread pool.

A holey bag (RFC 8493 §2.2.3) is complete when every payload file that is absent is listed in
``fetch.txt``: such files are *pending*, not missing, and are returned apart from the problems
(:attr:`BagCheck.fetch_pending`); Payload-Oxum then counts them with their fetch.txt lengths,
since it describes the bag as it will be once fetched.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from steward.errors import Detail
from steward.packaging.bagit_files import (
    BUILD_DIR,
    PAYLOAD_DIR,
    FetchLine,
    ManifestLine,
    manifest_algorithm,
    nfc,
    parse_bag_info,
    parse_fetch,
    parse_manifest,
    walk_files,
)
from steward.packaging.hashing import DEFAULT_CHUNK_SIZE, DIGEST_HEX_LENGTH, hash_file

_OXUM_RE = re.compile(r"^(\d+)\.(\d+)$")


@dataclass
class BagCheck:
    bag_dir: Path
    full: bool
    problems: list[Detail] = field(default_factory=list)
    fetch_pending: list[str] = field(default_factory=list)  # "data/…" paths still to fetch
    payload_files: int = 0  # files the payload manifests list
    verified_files: int = 0  # files whose checksums were recomputed (full)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        """Valid and nothing left to fetch."""
        return self.ok and not self.fetch_pending

    def add(
        self,
        message: str,
        path: str,
        *,
        value: str | None = None,
        accepted: str | None = None,
        row: int | None = None,
    ) -> None:
        self.problems.append(Detail(message, field=path, row=row, value=value, accepted=accepted))


def _read(check: BagCheck, name: str, *, required: bool = True) -> str | None:
    path = check.bag_dir / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            check.add("missing", name, accepted=f"a {name} file")
        return None
    except OSError as exc:
        check.add(f"cannot be read: {exc.strerror}", name)
        return None
    if raw.startswith(b"\xef\xbb\xbf"):
        check.add("starts with a byte-order mark", name, accepted="UTF-8 without BOM")
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        check.add(f"is not UTF-8 (byte {exc.start})", name, accepted="UTF-8 text")
        return None


def _check_declaration(check: BagCheck) -> None:
    text = _read(check, "bagit.txt")
    if text is None:
        return
    parsed = parse_bag_info(text)
    version = parsed.get("BagIt-Version")
    encoding = parsed.get("Tag-File-Character-Encoding")
    if version not in (["1.0"], ["0.97"]):
        check.add(
            "BagIt-Version is wrong",
            "bagit.txt",
            value=", ".join(version) or "none",
            accepted="1.0",
        )
    if [e.upper() for e in encoding] != ["UTF-8"]:
        check.add(
            "Tag-File-Character-Encoding is wrong",
            "bagit.txt",
            value=", ".join(encoding) or "none",
            accepted="UTF-8",
        )


def _check_info(check: BagCheck) -> tuple[int, int] | None:
    """Problems in bag-info.txt; returns Payload-Oxum as (bytes, files) when usable."""
    text = _read(check, "bag-info.txt")
    if text is None:
        return None
    parsed = parse_bag_info(text)
    for bad in parsed.bad_lines:
        check.add("not a 'Label: value' line", "bag-info.txt", row=bad.number, value=bad.text)
    oxum = parsed.get("Payload-Oxum")
    if not oxum:
        check.add("no Payload-Oxum", "bag-info.txt", accepted="Payload-Oxum: BYTES.FILES")
        return None
    if len(oxum) > 1:
        check.add("Payload-Oxum appears more than once", "bag-info.txt", value=", ".join(oxum))
    m = _OXUM_RE.match(oxum[0])
    if not m:
        check.add("malformed Payload-Oxum", "bag-info.txt", value=oxum[0], accepted="BYTES.FILES")
        return None
    return int(m.group(1)), int(m.group(2))


def _manifests(
    check: BagCheck,
) -> tuple[dict[str, list[ManifestLine]], dict[str, list[ManifestLine]]]:
    payload: dict[str, list[ManifestLine]] = {}
    tags: dict[str, list[ManifestLine]] = {}
    for child in sorted(check.bag_dir.iterdir()):
        kind = manifest_algorithm(child.name) if child.is_file() else None
        if kind is None:
            continue
        is_tag, alg = kind
        if alg not in DIGEST_HEX_LENGTH or alg not in hashlib.algorithms_available:
            check.add(
                f"unsupported checksum algorithm {alg!r}",
                child.name,
                accepted=", ".join(DIGEST_HEX_LENGTH),
            )
            continue
        text = _read(check, child.name)
        if text is None:
            continue
        lines, bad = parse_manifest(text)
        for b in bad:
            check.add("not a 'checksum  path' line", child.name, row=b.number, value=b.text)
        good = []
        seen: set[str] = set()
        for line in lines:
            if len(line.digest) != DIGEST_HEX_LENGTH[alg] or not all(
                c in "0123456789abcdef" for c in line.digest
            ):
                check.add(f"not a {alg} checksum", child.name, row=line.number, value=line.digest)
                continue
            reason = _unsafe(line.path, tag=is_tag)
            if reason:
                check.add(reason, child.name, row=line.number, value=line.raw_path)
                continue
            if line.path in seen:
                check.add("path listed twice", child.name, row=line.number, value=line.raw_path)
                continue
            seen.add(line.path)
            good.append(line)
        (tags if is_tag else payload)[alg] = good
    if not payload:
        check.add("no payload manifest", "manifest-sha256.txt", accepted="manifest-sha256.txt")
    return payload, tags


def _unsafe(path: str, *, tag: bool) -> str | None:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "path leaves the bag or has empty segments"
    if tag and parts[0] == PAYLOAD_DIR:
        return "a tag manifest cannot list payload files"
    if not tag and (parts[0] != PAYLOAD_DIR or len(parts) < 2):
        return "payload paths must start with data/"
    return None


def _match(path: str, raw: str, disk: dict[str, str]) -> str | None:
    """The on-disk name for a manifest path: as decoded, as written (bagit-python does not
    encode '%'), or Unicode-normalised (macOS rewrites names to NFD)."""
    for candidate in (path, raw):
        if candidate in disk:
            return candidate
    return disk.get(nfc(path))


def _check_fetch(check: BagCheck, listed: set[str]) -> dict[str, FetchLine]:
    text = _read(check, "fetch.txt", required=False)
    if text is None:
        return {}
    lines, bad = parse_fetch(text)
    for b in bad:
        check.add("not a 'URL LENGTH PATH' line", "fetch.txt", row=b.number, value=b.text)
    out: dict[str, FetchLine] = {}
    for line in lines:
        url = urlsplit(line.url)
        if not url.scheme or not (url.netloc or url.scheme == "file"):
            check.add("not a URL", "fetch.txt", row=line.number, value=line.url)
        if line.path not in listed:
            check.add(
                "lists a file no payload manifest lists",
                "fetch.txt",
                row=line.number,
                value=line.raw_path,
            )
        out[line.path] = line
    return out


def check_bag(
    bag_dir: Path,
    *,
    full: bool = False,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> BagCheck:
    """Check the bag at ``bag_dir``; see the module text for what fast and full cover."""
    check = BagCheck(Path(bag_dir), full)
    if not check.bag_dir.is_dir():
        check.add("not a folder", str(bag_dir))
        return check
    _check_declaration(check)
    oxum = _check_info(check)
    data = check.bag_dir / PAYLOAD_DIR
    if not data.is_dir():
        check.add("no payload folder", "data/", accepted="a data/ folder")
    if (check.bag_dir / BUILD_DIR).exists():
        check.add("the build did not finish (its work folder is still there)", f"{BUILD_DIR}/")
    payload, tags = _manifests(check)

    # every payload manifest must list the same files
    entries: dict[str, dict[str, str]] = {}
    raw_names: dict[str, str] = {}
    for alg, lines in payload.items():
        for line in lines:
            entries.setdefault(line.path, {})[alg] = line.digest
            raw_names[line.path] = line.raw_path
    for path, digests in sorted(entries.items()):
        for alg in sorted(set(payload) - set(digests)):
            check.add(f"not listed in manifest-{alg}.txt", path)
    check.payload_files = len(entries)

    fetch = _check_fetch(check, set(entries))
    disk_files = [f"{PAYLOAD_DIR}/{rel}" for rel in walk_files(data)] if data.is_dir() else []
    disk = {p: p for p in disk_files}
    disk.update({nfc(p): p for p in disk_files if nfc(p) not in disk})
    matched: dict[str, str] = {}  # manifest path → on-disk path
    for path in sorted(entries):
        found = _match(path, raw_names[path], disk)
        if found is not None:
            matched[path] = found
        elif path in fetch:
            check.fetch_pending.append(path)
        else:
            check.add("missing: listed in the manifest but not in the bag", path)
    used = set(matched.values())
    sizes: dict[str, int] = {}
    for path in disk_files:
        full_path = check.bag_dir / path
        if full_path.is_symlink():
            check.add("a symbolic link; a bag holds regular files", path)
        if path not in used:
            check.add("extra: in the bag but in no payload manifest", path)
        try:
            sizes[path] = full_path.stat().st_size
        except OSError as exc:
            check.add(f"cannot be read: {exc.strerror}", path)

    if oxum is not None:
        _check_oxum(check, oxum, sizes, fetch)
    _check_tags(check, tags)
    if full:
        _verify_payload(check, entries, matched, workers, on_progress)
    return check


def _check_oxum(
    check: BagCheck, oxum: tuple[int, int], sizes: dict[str, int], fetch: dict[str, FetchLine]
) -> None:
    pending = [fetch[p].size for p in check.fetch_pending]
    count = len(sizes) + len(pending)
    expected_bytes, expected_count = oxum
    if count != expected_count:
        check.add(
            "Payload-Oxum file count differs",
            "bag-info.txt",
            value=f"{count} files",
            accepted=f"{expected_count} files",
        )
    if any(size is None for size in pending):
        return  # unknown fetch lengths: only the count can be checked
    total = sum(sizes.values()) + sum(s for s in pending if s is not None)
    if total != expected_bytes:
        check.add(
            "Payload-Oxum byte count differs",
            "bag-info.txt",
            value=f"{total} bytes",
            accepted=f"{expected_bytes} bytes",
        )


def _check_tags(check: BagCheck, tags: dict[str, list[ManifestLine]]) -> None:
    if "sha256" not in tags:
        check.add(
            "no tag manifest: the bag was not finished",
            "tagmanifest-sha256.txt",
            accepted="tagmanifest-sha256.txt",
        )
    covered: set[str] = set()
    for alg, lines in sorted(tags.items()):
        for line in lines:
            covered.add(line.path)
            path = check.bag_dir / line.path
            if not path.is_file():
                check.add(f"missing: listed in tagmanifest-{alg}.txt", line.path)
                continue
            got = hash_file(path, (alg,)).hexdigests[alg]
            if got != line.digest:
                check.add(
                    f"{alg} differs from tagmanifest-{alg}.txt (the file was changed)",
                    line.path,
                    value=got,
                    accepted=line.digest,
                )
    if not tags:
        return
    for rel in sorted(_tag_files(check.bag_dir)):
        if not rel.startswith("tagmanifest-") and rel not in covered:
            check.add("a tag file no tag manifest lists (added after the bag was made?)", rel)


def _tag_files(bag_dir: Path) -> list[str]:
    """Every file outside data/ (and the build folder), without walking the payload."""
    out: list[str] = []
    for child in bag_dir.iterdir():
        if child.name in (PAYLOAD_DIR, BUILD_DIR):
            continue
        if child.is_dir() and not child.is_symlink():
            out.extend(f"{child.name}/{rel}" for rel in walk_files(child))
        else:
            out.append(child.name)
    return out


def _verify_payload(
    check: BagCheck,
    entries: dict[str, dict[str, str]],
    matched: dict[str, str],
    workers: int | None,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    def verify(path: str) -> list[Detail]:
        expected = entries[path]
        try:
            got = hash_file(
                check.bag_dir / matched[path], tuple(expected), chunk_size=DEFAULT_CHUNK_SIZE
            )
        except OSError as exc:
            return [Detail(f"cannot be read: {exc.strerror}", field=path)]
        if on_progress is not None:
            on_progress(got.size, 1)
        return [
            Detail(
                f"{alg} differs from manifest-{alg}.txt",
                field=path,
                value=got.hexdigests[alg],
                accepted=digest,
            )
            for alg, digest in sorted(expected.items())
            if got.hexdigests[alg] != digest
        ]

    paths = sorted(matched)
    n = workers or max(1, min(os.cpu_count() or 2, 8))
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="verify") as pool:
        for details in pool.map(verify, paths):
            check.problems.extend(details)
    check.verified_files = len(paths)


def validate_bag(bag_dir: Path, *, full: bool = False, workers: int | None = None) -> list[Detail]:
    """Every problem with the bag (empty when valid); files still to fetch are not problems."""
    return check_bag(bag_dir, full=full, workers=workers).problems
