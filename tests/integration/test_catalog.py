"""Access requirements, the folder tree they govern, and paths that may not escape it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from steward.db.models import AuditEntry, Folder
from steward.errors import Forbidden, NotFound, ValidationFailed
from steward.services import catalog
from steward.services.catalog import TreeNode
from tests.conftest import Consortium


def flatten(node: TreeNode) -> dict[str, tuple[str | None, str | None, bool]]:
    """path → (requirement, kind, inherited) for every folder below ``node``."""
    out: dict[str, tuple[str | None, str | None, bool]] = {}
    for child in node.children:
        out[child.path] = (child.requirement, child.requirement_kind, child.inherited)
        out.update(flatten(child))
    return out


def folders(c: Consortium) -> list[str]:
    with c.db.transaction() as s:
        return sorted(s.scalars(select(Folder.path).where(Folder.project_id == c.project)))


def test_requirements_and_their_folders(consortium: Consortium) -> None:
    c = consortium
    reqs = catalog.list_requirements(c.db, actor=c.requester, project=c.project)
    assert [(r.name, r.kind, r.folders) for r in reqs] == [
        ("Controlled genomes", "controlled", ["raw/wgs"]),
        ("Phenotype terms", "click-wrap", ["phenotypes"]),
    ]
    assert all(r.id.startswith("ar_") for r in reqs)
    # adding again by name updates it and adds folders; it does not make a second one
    again = catalog.add_requirement(
        c.db,
        actor=c.steward,
        project=c.project,
        name="Controlled genomes",
        kind="controlled",
        description="WGS and WES",
        folders=["raw/wes/", "raw/wgs"],
    )
    assert again.id == reqs[0].id
    assert again.folders == ["raw/wes", "raw/wgs"]
    assert again.description == "WGS and WES"
    assert len(catalog.list_requirements(c.db, actor=c.viewer, project=c.project)) == 2


def test_tree_shows_own_and_inherited_requirements(consortium: Consortium) -> None:
    c = consortium
    catalog.add_folder(c.db, actor=c.steward, project=c.project, path="raw/wgs/batch1/lane2")
    catalog.add_folder(c.db, actor=c.steward, project=c.project, path="raw/wgs/batch2")
    catalog.add_folder(c.db, actor=c.steward, project=c.project, path="docs")
    catalog.add_requirement(
        c.db, actor=c.steward, project=c.project, name="Open", kind="click-wrap"
    )
    # a folder below a governed one may have a requirement of its own, which its children inherit
    catalog.add_folder(
        c.db, actor=c.steward, project=c.project, path="raw/wgs/batch2/open", requirement="Open"
    )
    catalog.add_folder(c.db, actor=c.steward, project=c.project, path="raw/wgs/batch2/open/x")
    root = catalog.tree(c.db, actor=c.requester, project=c.project)
    assert (root.name, root.path, root.requirement) == (c.project, "", None)
    assert flatten(root) == {
        "docs": (None, None, False),
        "phenotypes": ("Phenotype terms", "click-wrap", False),
        "raw": (None, None, False),  # created implicitly as a parent; governs nothing
        "raw/wgs": ("Controlled genomes", "controlled", False),
        "raw/wgs/batch1": ("Controlled genomes", "controlled", True),
        "raw/wgs/batch1/lane2": ("Controlled genomes", "controlled", True),
        "raw/wgs/batch2": ("Controlled genomes", "controlled", True),
        "raw/wgs/batch2/open": ("Open", "click-wrap", False),
        "raw/wgs/batch2/open/x": ("Open", "click-wrap", True),
    }
    assert [n.name for n in root.children] == ["docs", "phenotypes", "raw"]
    raw = root.children[2]
    assert [n.name for n in raw.children] == ["wgs"]
    assert [n.name for n in raw.children[0].children] == ["batch1", "batch2"]


def test_moving_a_folder_to_another_requirement(consortium: Consortium) -> None:
    c = consortium
    catalog.add_folder(c.db, actor=c.steward, project=c.project, path="raw/wgs/deep")
    catalog.add_folder(
        c.db,
        actor=c.steward,
        project=c.project,
        path="raw/wgs",
        requirement="Phenotype terms",
    )
    reqs = {
        r.name: r.folders for r in catalog.list_requirements(c.db, actor=c.admin, project=c.project)
    }
    assert reqs == {"Controlled genomes": [], "Phenotype terms": ["phenotypes", "raw/wgs"]}
    tree = flatten(catalog.tree(c.db, actor=c.admin, project=c.project))
    assert tree["raw/wgs/deep"] == ("Phenotype terms", "click-wrap", True)
    # naming a folder again without a requirement keeps the one it has
    catalog.add_folder(c.db, actor=c.steward, project=c.project, path="raw/wgs")
    assert flatten(catalog.tree(c.db, actor=c.admin, project=c.project))["raw/wgs"][0] == (
        "Phenotype terms"
    )


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../secrets",
        "raw/../../etc",
        "raw/wgs/..",
        "/etc/passwd",
        "//server/share",
        "raw\\wgs",
        "..\\..\\windows",
        "C:\\data",
        "",
        "   ",
        "/",
        "raw/\x00/wgs",
    ],
)
def test_paths_that_escape_or_make_no_sense_are_refused(consortium: Consortium, path: str) -> None:
    c = consortium
    before = folders(c)
    with pytest.raises(ValidationFailed) as err:
        catalog.add_folder(c.db, actor=c.steward, project=c.project, path=path)
    assert [(d.field, d.value) for d in err.value.details] == [("path", path)]
    assert "relative" in (err.value.details[0].accepted or "")
    with pytest.raises(ValidationFailed):
        catalog.add_requirement(
            c.db,
            actor=c.steward,
            project=c.project,
            name="Sneaky",
            kind="controlled",
            folders=["fine/folder", path],
        )
    assert folders(c) == before
    assert [r.name for r in catalog.list_requirements(c.db, actor=c.admin, project=c.project)] == [
        "Controlled genomes",
        "Phenotype terms",
    ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("raw/rna", "raw/rna"),
        ("raw/rna/", "raw/rna"),
        ("raw//rna", "raw/rna"),
        ("./raw/rna", "raw/rna"),
        ("  raw/rna  ", "raw/rna"),
        ("raw/rna.v2/..x", "raw/rna.v2/..x"),  # '..x' is a name, not a step up
    ],
)
def test_paths_are_normalised(consortium: Consortium, given: str, stored: str) -> None:
    c = consortium
    assert catalog.add_folder(c.db, actor=c.steward, project=c.project, path=given) == stored
    assert stored in folders(c)


def test_only_staff_change_the_catalog(consortium: Consortium) -> None:
    c = consortium
    for who in (c.reviewer, c.requester, c.viewer, c.outsider):
        # members may not; to an outsider the project does not exist at all
        refusal = Forbidden if who != c.outsider else NotFound
        with pytest.raises(refusal):
            catalog.add_requirement(
                c.db, actor=who, project=c.project, name="Mine", kind="controlled"
            )
        with pytest.raises(refusal):
            catalog.add_folder(c.db, actor=who, project=c.project, path="mine")
    assert "mine" not in folders(c)
    # members may read; outsiders hear what they would of an unknown project
    catalog.tree(c.db, actor=c.viewer, project=c.project)
    with pytest.raises(NotFound) as hidden:
        catalog.tree(c.db, actor=c.outsider, project=c.project)
    with pytest.raises(NotFound) as unknown:
        catalog.tree(c.db, actor=c.outsider, project="p9")
    assert hidden.value.message == unknown.value.message.replace("p9", c.project)
    with pytest.raises(NotFound):
        catalog.list_requirements(c.db, actor=c.outsider, project=c.project)
    with c.db.transaction() as s:
        denied = [
            (a.actor, a.action) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert len(denied) == 10
    assert {who for who, _ in denied} == {c.reviewer, c.requester, c.viewer, c.outsider}


def test_bad_requirement_input(consortium: Consortium) -> None:
    c = consortium
    with pytest.raises(ValidationFailed) as err:
        catalog.add_requirement(c.db, actor=c.steward, project=c.project, name="X", kind="secret")
    assert (err.value.details[0].field, err.value.details[0].accepted) == (
        "kind",
        "controlled, click-wrap",
    )
    with pytest.raises(ValidationFailed) as err:
        catalog.add_requirement(
            c.db, actor=c.steward, project=c.project, name="  ", kind="controlled"
        )
    assert err.value.details[0].field == "name"
    with pytest.raises(NotFound) as nf:
        catalog.add_folder(
            c.db, actor=c.steward, project=c.project, path="raw/x", requirement="Nope"
        )
    assert nf.value.details[0].value == "Nope"
    assert "raw/x" not in folders(c)
    with pytest.raises(NotFound):
        catalog.tree(c.db, actor=c.admin, project="nope")
