"""schemathesis against the API's own description, on a real server over loopback: for any
generated input, no 500, and every answer (errors included) matches what the description
says — its status, media type and schema."""

from __future__ import annotations

import faulthandler
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from steward.config import Settings
from steward.db.session import Database
from steward.domain.requests import RequestFields
from steward.services import access, requests, tokens
from tests.api_server import serving
from tests.conftest import make_consortium


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One server for every operation of the module (a server and a database per operation
    cost more than the calls): generated input only has to be answered as described, so
    what earlier operations left behind is fine."""
    where = tmp_path_factory.mktemp("schema")
    (where / "crawled").mkdir()  # the server's crawl source: an empty folder feeding p1
    source = {"name": "s", "project": "p1", "url": str(where / "crawled"), "stage": "loading",
              "pattern": r"^(?P<accession>E-[A-Z]{4}-\d+)$"}  # fmt: skip
    settings = Settings(
        home=where / "home",
        database_url=f"sqlite:///{where / 'steward.db'}",
        crawl={"sources": [source]},
    )
    db = Database(settings)
    db.migrate()
    access.bootstrap_admin(db, user_id="admin")
    c = make_consortium(db)
    for i in range(3):  # something to list, show and act on
        requests.create(
            c.db, actor=c.requester, project=c.project,
            fields=RequestFields(f"Study {i}", "Uni", "Prof", "Research", datasets=("raw/wgs",)),
        )  # fmt: skip
    token = tokens.create(c.db, actor=c.steward, scope="write", expires_in=timedelta(hours=1))
    try:
        with serving(settings) as url:
            yield url, token.secret
    finally:
        db.dispose()


def _description() -> dict[str, Any]:
    """The description the server gives (building the app touches no database)."""
    from steward.api.app import create_app

    return create_app(Settings(home=Path(tempfile.gettempdir()) / "steward-schema")).openapi()


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.allow_header_conformance,
]
"""Every check but ``positive_data_acceptance``: input the description allows can still be
refused for what a schema cannot say — a date range that ends before it starts, a cursor no
page gave out, a command the subject's state does not allow — with 409 or 422 by design."""

# Loaded when the module is (schemathesis's lazy fixture loader reads a pytest attribute
# that pytest 9 no longer has); the calls go to a real server per test.
schema = schemathesis.openapi.from_dict(_description())
# The API's answers do not depend on the database kind (the API tests run on both); SQLite
# once is enough for the generated inputs.


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_description(case: Any, served: tuple[str, str]) -> None:
    url, token = served
    # Tests never judge speed: schemathesis's 10 s read timeout failed a run on a loaded
    # machine. A call still hanging after 30 s leaves every thread's stack in the output
    # (for a real hang, which the generous timeout then fails).
    faulthandler.dump_traceback_later(30)
    try:
        case.call_and_validate(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            checks=CHECKS,
            timeout=120,
        )
    finally:
        faulthandler.cancel_dump_traceback_later()
