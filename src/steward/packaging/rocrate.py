"""RO-Crate 1.2 metadata for a package: what each file is, which sample it is about, who made it.

Placement follows the RO-Crate 1.2 implementation notes, "Adding RO-Crate to BagIt": the
payload directory ``data/`` is the RO-Crate root, so the metadata file is
``data/ro-crate-metadata.json`` and is itself listed (and checksummed) in the bag's payload
manifests. Putting it next to ``bagit.txt`` instead would make the bag's base directory the crate
root — a layout neither BagIt nor RO-Crate tools recognise, with ``@id``\\s that would have to
start with ``data/`` and a metadata file no payload checksum protects.

Identifiers are JSON-LD URI references relative to the crate root: path segments are
percent-encoded where a URI needs it (space, ``%``, ``#``, ``?``), non-ASCII stays as UTF-8 (an
IRI), as the specification prefers. The graph is flat, every entity is referenced from the root
or a file, and everything is sorted, so the same package always gives the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from steward.packaging.bag_model import BagInfo, BuiltFile

SPEC = "https://w3id.org/ro/crate/1.2"
CONTEXT: list[Any] = [
    f"{SPEC}/context",
    # Bioschemas BioSample (pending schema.org type) is not in the RO-Crate context
    {"BioSample": "http://schema.org/BioSample"},
]
EDAM = "http://edamontology.org/"
BAGIT_RFC = "https://www.rfc-editor.org/rfc/rfc8493"

# extension (after removing a compression suffix) → (media type, EDAM format id, format name)
_FORMATS: dict[str, tuple[str | None, str | None, str]] = {
    "fastq": ("text/plain", "format_1930", "FASTQ"),
    "fq": ("text/plain", "format_1930", "FASTQ"),
    "fasta": ("text/plain", "format_1929", "FASTA"),
    "fa": ("text/plain", "format_1929", "FASTA"),
    "bam": (None, "format_2572", "BAM"),
    "sam": ("text/plain", "format_2573", "SAM"),
    "cram": (None, "format_3462", "CRAM"),
    "vcf": ("text/plain", "format_3016", "VCF"),
    "bcf": (None, "format_3020", "BCF"),
    "bed": ("text/plain", "format_3003", "BED"),
    "bw": (None, "format_3006", "bigWig"),
    "bigwig": (None, "format_3006", "bigWig"),
    "json": ("application/json", "format_3464", "JSON"),
    "csv": ("text/csv", "format_3752", "CSV"),
    "tsv": ("text/tab-separated-values", "format_3475", "TSV"),
    "html": ("text/html", "format_2331", "HTML"),
    "txt": ("text/plain", None, "text"),
    "md": ("text/markdown", None, "Markdown"),
    "pdf": ("application/pdf", None, "PDF"),
}
_COMPRESSED = {"gz": "application/gzip", "bgz": "application/gzip", "bz2": "application/x-bzip2"}
# data types named in manifests → the extension whose format they imply
_DATA_TYPE_FORMAT = {"fastq": "fastq", "bam": "bam", "cram": "cram", "vcf": "vcf", "bed": "bed"}
_SAFE_PATH_CHARS = "/!$&'()*+,;=:@-._~"


def crate_id(relpath: str) -> str:
    """A payload path as a URI reference: ASCII specials percent-encoded, Unicode kept."""
    return "".join(ch if ord(ch) > 127 else quote(ch, safe=_SAFE_PATH_CHARS) for ch in relpath)


def _slug(text: str) -> str:
    return quote(re.sub(r"\s+", "-", text.strip()), safe="-._~")


def file_format(relpath: str, data_type: str = "") -> tuple[list[str], str | None, str | None]:
    """(media types, EDAM format URL, format name) from the file name, else the data type."""
    parts = PurePosixPath(relpath).name.lower().split(".")
    media: list[str] = []
    if len(parts) > 1 and parts[-1] in _COMPRESSED:
        media.append(_COMPRESSED[parts[-1]])
        parts = parts[:-1]
    ext = parts[-1] if len(parts) > 1 else ""
    known = _FORMATS.get(ext) or _FORMATS.get(_DATA_TYPE_FORMAT.get(data_type.lower(), ""))
    if known is None:
        return media or ["application/octet-stream"], None, None
    mime, edam, name = known
    if not media:
        media.append(mime or "application/octet-stream")
    return media, (EDAM + edam if edam else None), name


def _version() -> str:
    try:
        return importlib_metadata.version("datasteward")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _ref(entity_id: str) -> dict[str, str]:
    return {"@id": entity_id}


def _refs(ids: Sequence[str]) -> dict[str, str] | list[dict[str, str]]:
    return _ref(ids[0]) if len(ids) == 1 else [_ref(i) for i in ids]


def _describe(meta: Mapping[str, str], format_name: str | None) -> str:
    labels = {
        "sample_id": "sample",
        "library_id": "library",
        "subject_id": "subject",
        "run_id": "run",
        "lane": "lane",
        "workflow_name": "workflow",
    }
    bits = [f"{label} {meta[key]}" for key, label in labels.items() if meta.get(key)]
    kind = meta.get("data_type") or format_name or "file"
    return f"{kind}: " + ", ".join(bits) if bits else kind


def build_crate(
    info: BagInfo, files: Sequence[BuiltFile], *, fetch: bool = False
) -> dict[str, Any]:
    """The RO-Crate JSON-LD document for the payload ``files`` (paths relative to data/)."""
    entities: dict[str, dict[str, Any]] = {}

    def add(entity: dict[str, Any]) -> str:
        entities.setdefault(entity["@id"], entity)
        return str(entity["@id"])

    org = add(
        {
            "@id": f"#organisation-{_slug(info.source_organisation)}",
            "@type": "Organization",
            "name": info.source_organisation,
        }
    )
    person = add(
        {"@id": f"#user-{_slug(info.created_by)}", "@type": "Person", "name": info.created_by}
    )
    software = add(
        {
            "@id": "#steward",
            "@type": "SoftwareApplication",
            "name": "Steward",
            "version": _version(),
            "description": "Data coordination centre that built this package",
        }
    )
    bag = add(
        {
            "@id": "#bagit",
            "@type": "CreativeWork",
            "name": f"BagIt bag {info.package_id}",
            "identifier": info.package_id,
            "conformsTo": _ref(BAGIT_RFC),
            "description": (
                "This RO-Crate is the payload directory (data/) of a BagIt 1.0 bag. The bag's base "
                "directory holds bagit.txt, bag-info.txt, the SHA-256 and MD5 manifests of every "
                "file here, the tag manifests"
                + (", fetch.txt listing the files to download into data/" if fetch else "")
                + " and report.html."
            ),
        }
    )
    add({"@id": BAGIT_RFC, "@type": "WebPage", "name": "RFC 8493: The BagIt File Packaging Format"})

    file_ids: list[str] = []
    projects: set[str] = set()
    for f in sorted(files, key=lambda b: b.relpath):
        meta = f.metadata
        media, edam, format_name = file_format(f.relpath, meta.get("data_type", ""))
        encoding: list[Any] = list(media)
        if edam:
            encoding.append(_ref(edam))
            add({"@id": edam, "@type": "WebPage", "name": f"{format_name} (EDAM)"})
        entity: dict[str, Any] = {
            "@id": crate_id(f.relpath),
            "@type": "File",
            "name": PurePosixPath(f.relpath).name,
            "description": _describe(meta, format_name),
            "contentSize": str(f.size),
            "sha256": f.sha256,
            "encodingFormat": encoding[0] if len(encoding) == 1 else encoding,
        }
        if f.fetch_url:
            entity["url"] = f.fetch_url
        about: list[str] = []
        if meta.get("sample_id"):
            sample = f"#sample-{_slug(meta['sample_id'])}"
            about.append(sample)
            if sample not in entities:
                sample_entity: dict[str, Any] = {
                    "@id": sample,
                    "@type": "BioSample",
                    "identifier": meta["sample_id"],
                    "name": f"Sample {meta['sample_id']}",
                }
                if meta.get("subject_id"):
                    sample_entity["description"] = f"From subject {meta['subject_id']}"
                add(sample_entity)
        if meta.get("library_id"):
            library = f"#library-{_slug(meta['library_id'])}"
            about.append(library)
            lib: dict[str, Any] = {
                "@id": library,
                "@type": "BioSample",
                "identifier": meta["library_id"],
                "name": f"Library {meta['library_id']}",
            }
            if meta.get("sample_id"):
                lib["isPartOf"] = _ref(f"#sample-{_slug(meta['sample_id'])}")
            add(lib)
        if about:
            entity["about"] = _refs(about)
        if meta.get("data_type"):
            term = add(
                {
                    "@id": f"#data-type-{_slug(meta['data_type'])}",
                    "@type": "DefinedTerm",
                    "name": meta["data_type"],
                    "termCode": meta["data_type"],
                }
            )
            entity["additionalType"] = _ref(term)
        if meta.get("project_id"):
            projects.add(meta["project_id"])
        file_ids.append(add(entity))

    project_ids = [
        add({"@id": f"#project-{_slug(p)}", "@type": "ResearchProject", "name": p, "identifier": p})
        for p in sorted(projects)
    ]
    add(
        {
            "@id": "#build",
            "@type": "CreateAction",
            "name": f"Built package {info.package_id}",
            "agent": _ref(person),
            "instrument": _ref(software),
            "result": _ref("./"),
            "endTime": info.created_at.isoformat(),
        }
    )
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": info.name,
        "description": info.description or f"Data package {info.name} ({info.package_id})",
        "identifier": info.package_id,
        "datePublished": info.created_at.isoformat(),
        "publisher": _ref(org),
        "creator": _ref(person),
        "isPartOf": _ref(bag),
        "mentions": _ref("#build"),
        "hasPart": [_ref(i) for i in file_ids],
    }
    if info.license:
        root["license"] = _ref(info.license) if "://" in info.license else info.license
    if project_ids:
        root["about"] = _refs(project_ids)
    descriptor = {
        "@id": "ro-crate-metadata.json",
        "@type": "CreativeWork",
        "conformsTo": _ref(SPEC),
        "about": _ref("./"),
    }
    others = sorted((e for e in entities.values()), key=lambda e: str(e["@id"]))
    return {"@context": CONTEXT, "@graph": [descriptor, root, *others]}


def crate_bytes(info: BagInfo, files: Sequence[BuiltFile], *, fetch: bool = False) -> bytes:
    doc = build_crate(info, files, fetch=fetch)
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


__all__ = ["CONTEXT", "SPEC", "build_crate", "crate_bytes", "crate_id", "file_format"]
