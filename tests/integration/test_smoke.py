"""End-to-end path through the services on each backend."""

from __future__ import annotations

from steward.domain.requests import RequestFields
from steward.services import reports, requests
from steward.services.requests import RequestFilter
from tests.conftest import Consortium


def test_request_lifecycle_and_reports(consortium: Consortium) -> None:
    c = consortium
    fields = RequestFields(
        title="Study",
        institution="Uni",
        project_lead="Prof X",
        intended_use="Research",
        datasets=("raw/wgs",),
        duo_codes=("GRU",),
    )
    v = requests.create(c.db, actor=c.requester, project=c.project, fields=fields)
    assert v.state == "draft"
    v = requests.act(c.db, actor=c.requester, request_id=v.id, command="submit")
    v = requests.act(c.db, actor=c.reviewer, request_id=v.id, command="approve")
    assert v.state == "approved"
    assert v.version == 3
    flt = RequestFilter(project=c.project)
    t = reports.tracking_table(c.db, actor=c.steward, flt=flt)
    assert [r[0] for r in t.rows] == [v.id]
    log = reports.change_log(c.db, actor=c.steward, flt=flt)
    assert [(r[2], r[3]) for r in log.rows] == [
        (None, "draft"),
        ("draft", "submitted"),
        ("submitted", "approved"),
    ]
    tis = reports.time_in_state(c.db, actor=c.steward, flt=flt)
    assert {r[0]: r[1] for r in tis.rows}["submitted"] == 1
