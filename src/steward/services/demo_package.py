"""The demo's data package: a small sequencing cohort on disk → a bag → pushed to a folder.

The files are generated deterministically under STEWARD_HOME, so a second run finds the same
package (same name, same rows) and the same share, and adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from steward.config import Settings
from steward.db.session import Database
from steward.services import package_build, packages, shares
from steward.services.demo import PROJECT, STEWARD
from steward.services.package_build import BuildProgress
from steward.services.packages import PackageSpec, PackageView
from steward.services.shares import PushProgress, ShareView

NAME = "demo-cohort"
LIBRARIES = 8


@dataclass
class DemoPackage:
    package: PackageView
    share: ShareView
    report: Path
    recipient: Path


def _write(path: Path, size: int, salt: str) -> None:
    block = hashlib.sha256(salt.encode()).digest() * 32
    content = (block * (size // len(block) + 1))[:size]
    if not path.is_file() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _source(root: Path) -> tuple[Path, Path]:
    """FASTQ pairs from one run, BAM + VCF per library from a workflow, one library with no
    files yet (the report flags it), and one empty file (flagged too)."""
    samples, outputs = [], []
    for i in range(LIBRARIES):
        lib, project = f"LIB{i:02d}", ("COHORT-A" if i < 5 else "COHORT-B")
        for read in (1, 2):
            rel = f"runs/RUN-2026-11/{lib}_R{read}.fastq.gz"
            _write(root / rel, 0 if (i, read) == (7, 2) else 40_000 + 7_000 * i, rel)
            samples.append(
                [f"SMP{i:02d}", lib, f"SBJ{i // 2:02d}", project, "fastq", "RUN-2026-11", "1", rel]
            )
        for ext, kind in ((".bam", "bam"), (".vcf.gz", "vcf")):
            rel = f"analysis/{lib}/{lib}{ext}"
            _write(root / rel, 25_000 + 3_000 * i, rel)
            outputs.append([lib, "tumor-normal", f"WFR{i:02d}", kind, rel])
    samples.append(["SMP99", "LIB99", "SBJ99", "COHORT-A", "", "RUN-2026-11", "", ""])
    manifest, workflow = root / "samples.csv", root / "workflow.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "sample_id",
                "library_id",
                "subject_id",
                "project_id",
                "data_type",
                "run_id",
                "lane",
                "path",
            ]
        )
        w.writerows(samples)
    with workflow.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["library_id", "workflow_name", "portal_run_id", "data_type", "path"])
        w.writerows(outputs)
    return manifest, workflow


def run(
    db: Database,
    settings: Settings,
    *,
    build_progress: BuildProgress | None = None,
    push_progress: PushProgress | None = None,
) -> DemoPackage:
    manifest, workflow = _source(settings.home / "demo-data")
    view, _ = packages.create(
        db,
        settings,
        actor=STEWARD,
        project=PROJECT,
        spec=PackageSpec(
            name=NAME,
            manifest=manifest,
            workflow_manifest=workflow,
            description="Demo cohort: FASTQ, BAM and VCF for 8 libraries",
        ),
    )
    built = package_build.build(
        db, settings, actor=STEWARD, package_id=view.id, progress=build_progress
    )
    # The recipient is beside STEWARD_HOME, not in it: shares never write into Steward's own
    # folders (its database and bags), and the demo plays by the same rule.
    home = settings.home.resolve()
    recipient = home.parent / f"{home.name}-demo-recipient"
    share = shares.push(
        db,
        settings,
        actor=STEWARD,
        package_id=built.id,
        destination=str(recipient),
        progress=push_progress,
    )
    return DemoPackage(
        package=built,
        share=share,
        report=packages.bag_dir(settings, built.id) / "report.html",
        recipient=recipient / NAME,
    )
