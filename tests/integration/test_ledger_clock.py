"""A live command on a subject whose history is dated in the future.

Histories imported before imports refused future times (or with a generous
``import_clock_skew``) can end after now. A live command then is recorded at the last
event's time, with a note saying so, instead of being refused until that time passes; a
command given an explicit earlier time is still refused.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from steward.db.models import Event
from steward.errors import ValidationFailed
from steward.services import importer, requests
from steward.timeutil import utcnow
from tests.conftest import Consortium
from tests.integration.test_import import by_external, csv_file, row

KIND = "access_request"


def _imported_ahead(c: Consortium, tmp_path: Path) -> tuple[str, str]:
    """A submitted request whose last event is dated two days from now; (id, that time)."""
    ahead = (utcnow() + timedelta(days=2)).replace(microsecond=0).isoformat()
    path = csv_file(
        tmp_path,
        row("R1", "draft", "2025-03-01T09:00:00+00:00", title="t", requester="ada"),
        row("R1", "submitted", ahead),
    )
    importer.import_requests(
        c.db, actor=c.steward, project=c.project, path=path, clock_skew=timedelta(days=3)
    )
    request, _ = by_external(c)["R1"]
    return request.id, ahead


def test_live_command_after_a_future_dated_history_is_recorded_at_its_end_with_a_note(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    rid, ahead = _imported_ahead(c, tmp_path)
    view = requests.act(c.db, actor=c.steward, request_id=rid, command="cancel", reason="dup")
    assert (view.state, view.version) == ("cancelled", 3)
    with c.db.read() as s:
        last = s.scalars(
            select(Event).where(Event.subject_kind == KIND, Event.subject_id == rid, Event.seq == 3)
        ).one()
    assert last.at.isoformat() == ahead
    assert last.stay_seconds == 0.0
    assert last.data["reason"] == "dup"
    note = last.data["clock_note"]
    assert f"recorded at {ahead}, the time of the previous event" in note
    assert "in the future" in note


def test_an_explicit_time_before_the_last_event_is_still_refused(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    rid, ahead = _imported_ahead(c, tmp_path)
    with pytest.raises(ValidationFailed) as err:
        requests.act(
            c.db,
            actor=c.steward,
            request_id=rid,
            command="cancel",
            reason="dup",
            at=utcnow(),
        )
    assert f"would come before the previous one at {ahead}" in err.value.message
