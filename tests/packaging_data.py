"""Small, real sequencing-like datasets on disk (files + manifests) for package tests."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Dataset:
    root: Path
    manifest: Path
    workflow_manifest: Path
    files: dict[str, bytes] = field(default_factory=dict)  # absolute path → content

    def digest(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()


def make_dataset(
    root: Path, *, samples: int = 3, fastq_size: int = 20_000, big: int = 0, seed: int = 7
) -> Dataset:
    """Two projects, FASTQ pairs per library, one BAM + VCF per library from a workflow, and
    one library listed without any file (the report must highlight it)."""
    data = root / "source"
    data.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    wf_rows: list[dict[str, str]] = []
    files: dict[str, bytes] = {}

    def put(rel: str, size: int, salt: str) -> Path:
        path = data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        block = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
        content = (block * (size // len(block) + 1))[:size]
        path.write_bytes(content)
        files[str(path)] = content
        return path

    for i in range(samples):
        project = "PRJA" if i % 2 == 0 else "PRJB"
        lib = f"L{i:03d}"
        for read in (1, 2):
            rel = f"runs/RUN1/{lib}_R{read}.fastq.gz"
            size = fastq_size + (big if i == 0 and read == 1 else 0)
            put(rel, size, rel)
            rows.append(
                {
                    "sample_id": f"S{i:03d}",
                    "library_id": lib,
                    "subject_id": f"SBJ{i // 2:03d}",
                    "project_id": project,
                    "data_type": "fastq",
                    "run_id": "RUN1",
                    "lane": "1",
                    "path": rel,
                }
            )
        for ext, dtype in ((".bam", "bam"), (".vcf.gz", "vcf")):
            rel = f"analysis/{lib}/{lib}{ext}"
            put(rel, fastq_size // 2, rel)
            wf_rows.append(
                {
                    "library_id": lib,
                    "workflow_name": "tumor-normal",
                    "portal_run_id": f"WF{i:03d}",
                    "data_type": dtype,
                    "path": rel,
                }
            )
    rows.append(
        {
            "sample_id": "S999",
            "library_id": "L999",
            "subject_id": "SBJ999",
            "project_id": "PRJA",
            "data_type": "",
            "run_id": "RUN1",
            "lane": "",
            "path": "",
        }
    )
    manifest = data / "samples.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    workflow = data / "workflow.csv"
    with workflow.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(wf_rows[0]))
        w.writeheader()
        w.writerows(wf_rows)
    return Dataset(data, manifest, workflow, files)


def tree_digests(root: Path) -> dict[str, str]:
    """relative path → sha256 of every file under ``root``."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
