"""Checking a bag on disk: every problem, each naming the path, what was expected and found.

Both are in the message itself (not only in the detail's ``value`` and ``accepted``), since the
message is what a person reads: "Payload-Oxum says 205 files; the bag has 204", never a bare
"differs".

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
            check.add(f"missing: the bag has no {name}", name, accepted=f"a {name} file")
        return None
    except OSError as exc:
        check.add(f"cannot be read: {exc.strerror}", name, accepted="a readable file")
        return None
    if raw.startswith(b"\xef\xbb\xbf"):
        check.add(
            "starts with a UTF-8 byte-order mark (bytes ef bb bf)",
            name,
            value="ef bb bf",
            accepted="UTF-8 without a byte-order mark",
        )
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = f"0x{raw[exc.start]:02x}"
        check.add(
            f"is not UTF-8: byte {byte} at byte offset {exc.start}",
            name,
            value=byte,
            accepted="UTF-8 text",
        )
        return None


def _check_declaration(check: BagCheck) -> None:
    text = _read(check, "bagit.txt")
    if text is None:
        return
    parsed = parse_bag_info(text)
    version = parsed.get("BagIt-Version")
    encoding = parsed.get("Tag-File-Character-Encoding")
    if version not in (["1.0"], ["0.97"]):
        found = ", ".join(version) or "missing"
        check.add(f"BagIt-Version is {found}", "bagit.txt", value=found, accepted="1.0 (or 0.97)")
    if [e.upper() for e in encoding] != ["UTF-8"]:
        found = ", ".join(encoding) or "missing"
        check.add(
            f"Tag-File-Character-Encoding is {found}", "bagit.txt", value=found, accepted="UTF-8"
        )


def _check_info(check: BagCheck) -> tuple[int, int] | None:
    """Problems in bag-info.txt; returns Payload-Oxum as (bytes, files) when usable."""
    text = _read(check, "bag-info.txt")
    if text is None:
        return None
    parsed = parse_bag_info(text)
    for bad in parsed.bad_lines:
        check.add(
            f"not a 'Label: value' line: {bad.text!r}",
            "bag-info.txt",
            row=bad.number,
            value=bad.text,
            accepted="Label: value",
        )
    oxum = parsed.get("Payload-Oxum")
    if not oxum:
        check.add(
            "no Payload-Oxum line", "bag-info.txt", accepted="Payload-Oxum: BYTES.FILES (once)"
        )
        return None
    if len(oxum) > 1:
        found = ", ".join(oxum)
        check.add(
            f"Payload-Oxum appears {len(oxum)} times: {found}",
            "bag-info.txt",
            value=found,
            accepted="one Payload-Oxum line",
        )
    m = _OXUM_RE.match(oxum[0])
    if not m:
        check.add(
            f"malformed Payload-Oxum {oxum[0]!r}",
            "bag-info.txt",
            value=oxum[0],
            accepted="BYTES.FILES, e.g. 1048576.12",
        )
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
                value=alg,
                accepted=", ".join(DIGEST_HEX_LENGTH),
            )
            continue
        text = _read(check, child.name)
        if text is None:
            continue
        lines, bad = parse_manifest(text)
        for b in bad:
            check.add(
                f"not a 'checksum  path' line: {b.text!r}",
                child.name,
                row=b.number,
                value=b.text,
                accepted="CHECKSUM  PATH",
            )
        good = []
        seen: dict[str, int] = {}
        for line in lines:
            if len(line.digest) != DIGEST_HEX_LENGTH[alg] or not all(
                c in "0123456789abcdef" for c in line.digest
            ):
                check.add(
                    f"{line.digest!r} is not a {alg} checksum",
                    child.name,
                    row=line.number,
                    value=line.digest,
                    accepted=f"{DIGEST_HEX_LENGTH[alg]} lowercase hexadecimal digits",
                )
                continue
            reason = _unsafe(line.path, tag=is_tag)
            if reason:
                check.add(
                    f"{line.raw_path!r}: {reason}",
                    child.name,
                    row=line.number,
                    value=line.raw_path,
                    accepted="a path inside the bag, not in data/"
                    if is_tag
                    else "data/ and a relative path",
                )
                continue
            if line.path in seen:
                check.add(
                    f"{line.raw_path!r} is listed twice (first at line {seen[line.path]})",
                    child.name,
                    row=line.number,
                    value=line.raw_path,
                    accepted="each path once",
                )
                continue
            seen[line.path] = line.number
            good.append(line)
        (tags if is_tag else payload)[alg] = good
    if not payload:
        check.add(
            "no payload manifest: the bag has no usable manifest-ALGORITHM.txt",
            "manifest-sha256.txt",
            accepted="manifest-sha256.txt",
        )
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
        check.add(
            f"not a 'URL LENGTH PATH' line: {b.text!r}",
            "fetch.txt",
            row=b.number,
            value=b.text,
            accepted="URL LENGTH data/PATH",
        )
    out: dict[str, FetchLine] = {}
    for line in lines:
        url = urlsplit(line.url)
        if not url.scheme or not (url.netloc or url.scheme == "file"):
            check.add(
                f"not a URL: {line.url!r}",
                "fetch.txt",
                row=line.number,
                value=line.url,
                accepted="scheme://host/path, e.g. s3://bucket/key or file:///path",
            )
        if line.path not in listed:
            check.add(
                f"lists {line.raw_path!r}, which no payload manifest lists",
                "fetch.txt",
                row=line.number,
                value=line.raw_path,
                accepted="only files the payload manifests list",
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
        there = "a file" if check.bag_dir.exists() else "nothing"
        check.add(
            f"not a folder: there is {there} at this path",
            str(bag_dir),
            value=there,
            accepted="a bag's folder",
        )
        return check
    _check_declaration(check)
    oxum = _check_info(check)
    data = check.bag_dir / PAYLOAD_DIR
    if not data.is_dir():
        check.add("no payload folder: the bag has no data/", "data/", accepted="a data/ folder")
    if (check.bag_dir / BUILD_DIR).exists():
        check.add(
            "the build did not finish (its work folder is still there)",
            f"{BUILD_DIR}/",
            accepted=f"no {BUILD_DIR}/ folder: a finished build removes it",
        )
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
            listed_in = ", ".join(f"manifest-{a}.txt" for a in sorted(digests))
            check.add(
                f"listed in {listed_in} but not in manifest-{alg}.txt",
                path,
                accepted="every payload manifest lists the same files",
            )
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
            check.add(
                "missing: listed in the manifest but not in the bag",
                path,
                accepted="the file, or a fetch.txt line for it",
            )
    used = set(matched.values())
    sizes: dict[str, int] = {}
    for path in disk_files:
        full_path = check.bag_dir / path
        if full_path.is_symlink():
            target = os.readlink(full_path)
            check.add(
                f"a symbolic link (to {target}); a bag holds regular files",
                path,
                value=target,
                accepted="a regular file",
            )
        try:
            sizes[path] = full_path.stat().st_size
        except OSError as exc:
            check.add(f"cannot be read: {exc.strerror}", path, accepted="a readable file")
        if path not in used:
            size = f"{sizes[path]} bytes" if path in sizes else "a file"
            check.add(
                f"extra: {size} in the bag but in no payload manifest",
                path,
                accepted="only files the payload manifests list",
            )

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
    fetched = f", {len(pending)} of them still to fetch" if pending else ""
    if count != expected_count:
        check.add(
            f"Payload-Oxum file count differs: it says {expected_count} files; "
            f"the bag has {count} files{fetched}",
            "bag-info.txt",
            value=f"{count} files",
            accepted=f"{expected_count} files",
        )
    if any(size is None for size in pending):
        return  # unknown fetch lengths: only the count can be checked
    total = sum(sizes.values()) + sum(s for s in pending if s is not None)
    if total != expected_bytes:
        check.add(
            f"Payload-Oxum byte count differs: it says {expected_bytes} bytes; "
            f"the bag has {total} bytes{fetched}",
            "bag-info.txt",
            value=f"{total} bytes",
            accepted=f"{expected_bytes} bytes",
        )


def _check_tags(check: BagCheck, tags: dict[str, list[ManifestLine]]) -> None:
    if "sha256" not in tags:
        check.add(
            "no tag manifest: the bag has no tagmanifest-sha256.txt, so it was not finished",
            "tagmanifest-sha256.txt",
            accepted="tagmanifest-sha256.txt",
        )
    covered: set[str] = set()
    for alg, lines in sorted(tags.items()):
        for line in lines:
            covered.add(line.path)
            path = check.bag_dir / line.path
            if not path.is_file():
                check.add(
                    f"missing: listed in tagmanifest-{alg}.txt but not in the bag",
                    line.path,
                    accepted="the file",
                )
                continue
            got = hash_file(path, (alg,)).hexdigests[alg]
            if got != line.digest:
                check.add(
                    f"{alg} differs from tagmanifest-{alg}.txt (the file was changed): "
                    f"it is {got}, the manifest says {line.digest}",
                    line.path,
                    value=got,
                    accepted=line.digest,
                )
    if not tags:
        return
    for rel in sorted(_tag_files(check.bag_dir)):
        if not rel.startswith("tagmanifest-") and rel not in covered:
            check.add(
                "a tag file no tag manifest lists (added after the bag was made?)",
                rel,
                accepted="only files the tag manifests list",
            )


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
            return [
                Detail(f"cannot be read: {exc.strerror}", field=path, accepted="a readable file")
            ]
        if on_progress is not None:
            on_progress(got.size, 1)
        return [
            Detail(
                f"{alg} differs from manifest-{alg}.txt: it is {got.hexdigests[alg]}, the "
                f"manifest says {digest}",
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
