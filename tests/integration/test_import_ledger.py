"""Imported history is ledger history: the read model is what its events project, nothing
written beside them (the importer appends through ``ledger.append_many``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from steward.domain import requests as domain
from steward.services import importer
from tests.conftest import Consortium
from tests.integration.test_import import DATA, by_external, csv_file, row


def _projected(events: list[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for e in events:
        values.update(domain.project(e.type, e.at, e.actor, e.data, values))
    return values


@pytest.mark.parametrize("name", ["history.csv", "history.jsonl"])
def test_every_imported_column_comes_from_an_event(
    consortium: Consortium, tmp_path: Path, name: str
) -> None:
    c = consortium
    path = tmp_path / name
    shutil.copy(DATA / name, path)
    importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    for ext, (request, events) in by_external(c).items():
        projected = _projected(events)
        assert projected["external_id"] == ext
        for column in (*domain.SUBJECT_FIELDS, "submitted_at", "decided_at", "decided_by"):
            assert getattr(request, column) == projected.get(column), (ext, column)


def test_a_reviewer_named_on_a_later_row_is_recorded_by_the_creation(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "submitted", title="t", requester="ada"),
        row("R1", "approved", "2025-03-02T09:00:00+00:00", actor="rita", reviewer="rita"),
    )
    importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    request, events = by_external(c)["R1"]
    assert (request.reviewer, events[0].data["reviewer"]) == ("rita", "rita")
