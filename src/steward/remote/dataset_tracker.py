"""The dataset tracker's read commands through a server's API
(:mod:`steward.api.dataset_tracker`), answering the services' own tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from steward.remote.client import Client
from steward.remote.subjects import filter_params, params_of
from steward.services import dataset_views
from steward.services.dataset_duplicates import DuplicatesResult
from steward.services.dataset_files import DatasetFiles
from steward.services.dataset_verify import VerifyResult
from steward.services.kinds import Filter
from steward.tables import Table

V1 = "/api/v1"


def view_table(client: Client, *, view: str, flt: Filter, sort: str, tz: ZoneInfo) -> Table:
    """``dataset_views.view_table`` on the server (with its accession mappings): the same
    columns, the server's rows."""
    params = [*params_of(flt, sort), ("tz", tz.key), ("format", "json")]
    if flt.limit:
        params.append(("limit", str(flt.limit)))
    found = client.call("GET", f"{V1}/datasets/views/{quote(view, safe='')}", params=params)
    columns = dataset_views.COLUMNS[view]

    def cell(value: Any, kind: str) -> Any:
        if value is not None and kind == "time":
            return datetime.fromisoformat(value)
        return value

    rows = [tuple(cell(r[c.machine_name], c.kind) for c in columns) for r in found["rows"]]
    return Table(dataset_views.view_title(view), list(columns), list(rows),
                 brief=dataset_views.BRIEF[view])  # fmt: skip


def find_duplicates(
    client: Client, *, project: str | None = None, by_content: bool = False
) -> DuplicatesResult:
    """``find_duplicates`` on the server, with its own ``[crawl]`` config."""
    params = [("by_content", "true" if by_content else "false")]
    if project:
        params.append(("project", project))
    found = client.call("GET", f"{V1}/datasets/duplicates", params=params)
    return DuplicatesResult.model_validate(found)


def list_files(client: Client, *, dataset_id: str) -> DatasetFiles:
    """``dataset_files.list_files`` on the server (file kinds by its config)."""
    found = client.call("GET", f"{V1}/datasets/{quote(dataset_id, safe='')}/files")
    return DatasetFiles.model_validate(found)


def verify(client: Client, *, dataset_id: str) -> VerifyResult:
    """``dataset_verify.verify`` run on the server, through its configured sources."""
    found = client.call("POST", f"{V1}/datasets/{quote(dataset_id, safe='')}/verify")
    return VerifyResult.model_validate(found)


def overview(client: Client, *, flt: Filter, every: str | None, tz: ZoneInfo) -> dict[str, Any]:
    """The Datasets page the server renders for the caller, with its figures: ``html`` and
    what ``dataset_overview.figures`` gives."""
    params = [*filter_params(flt), ("tz", tz.key), ("format", "json")]
    if every:
        params.append(("every", every))
    found: dict[str, Any] = client.call("GET", f"{V1}/datasets/overview", params=params)
    return found
