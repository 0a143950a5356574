"""Packages over the API, beyond the registry's generated list, detail, timeline and commands:

- ``POST /api/v1/packages``: a package from an uploaded manifest (multipart/form-data, up to
  ``api_upload_mib``), its build queued for the worker — what ``steward package create
  --no-wait`` does. The manifest may only name files in the server's ``api_source_roots``
  (:mod:`steward.services.package_uploads`);
- ``POST /api/v1/packages/{id}/build``: queue a pending (or interrupted) package's build;
- ``GET /api/v1/packages/{id}/contents``, ``/files``, ``/validation`` and ``/report``: what
  ``steward package show``, ``files``, ``validate`` and ``report`` give.
"""

from __future__ import annotations

import hashlib
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Header, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from steward.api import negotiation
from steward.api.auth import Presented, database, require_write, settings_of, signed_in
from steward.api.idempotency import claimed
from steward.api.problems import Problem, documented
from steward.api.subjects import _only
from steward.errors import Detail, ValidationFailed
from steward.packaging.manifest import DEFAULT_LAYOUT
from steward.services import package_build, package_uploads, packages
from steward.services.packages import (
    PackageFileView,
    PackageSpec,
    PackageView,
    ValidationReport,
)

router = APIRouter(tags=["packages"])
BASE = "/api/v1/packages"
MAX_FILES_PAGE = 5000

_Id = Annotated[str, Path(max_length=200, description="The package's id (pkg_…).")]
_Text = Annotated[str, Field(max_length=500)]
_Many = Annotated[list[_Text], Field(default_factory=list, max_length=10_000)]


class NewPackage(BaseModel):
    """The form of ``POST /api/v1/packages``: the manifest file(s) and the options of
    ``steward package create`` (repeat a field for several values)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=128, description="Letters, digits, '-', '_', '.'.")
    project: str = Field(max_length=64, description="The Steward project it belongs to.")
    manifest: UploadFile = Field(description="The sample manifest: CSV, TSV or XLSX.")
    workflow_manifest: UploadFile | None = Field(
        None, description="Manifest of workflow outputs, joined to the samples on library_id."
    )
    data_type: _Many = Field(description="Only these data types (fastq, bam, cram, vcf…).")
    only_project: _Many = Field(description="Only rows of this manifest project_id.")
    sample: _Many = Field(description="Only these samples.")
    library: _Many = Field(description="Only these libraries.")
    run: _Many = Field(description="Only these runs.")
    layout: str = Field(DEFAULT_LAYOUT, max_length=500, description="Where files go in data/.")
    mode: str = Field("copy", max_length=16, description="copy, link or fetch.")
    description: str = Field("", max_length=20_000)
    base_dir: str | None = Field(
        None,
        max_length=4096,
        description="The server folder relative paths in the manifest are read from; it must "
        "lie in STEWARD_API_SOURCE_ROOTS. Without it, relative paths are refused.",
    )
    allow_root: _Many = Field(
        description="Narrow the places the manifest may use to these (each inside "
        "STEWARD_API_SOURCE_ROOTS)."
    )
    strict_ids: bool | None = Field(
        None, description="Refuse (true) or warn about (false) look-alike ids; default: the "
        "server's manifest_ids setting.",
    )  # fmt: skip
    build: bool = Field(True, description="Queue the build (false: only record the package).")


class PackageCreated(BaseModel):
    package: PackageView
    created: bool = Field(description="False when the same package already existed.")
    action_id: str | None = Field(
        description="The queued build (GET /api/v1/jobs/{action_id}); null when none was "
        "queued (not asked for, or the package is already built or failed)."
    )
    warnings: list[str] = Field(description="The manifest's warnings, as the CLI prints them.")


class BuildQueued(BaseModel):
    package: PackageView
    action_id: str = Field(description="The build's action: GET /api/v1/jobs/{action_id}.")


class PackageContents(BaseModel):
    """What ``steward package show`` adds to the package's fields."""

    bag_path: str = Field(description="Where the bag is on the server.")
    files_by_data_type: dict[str, int]
    bytes_by_data_type: dict[str, int]
    warnings: list[str]


class PackageFilePage(BaseModel):
    items: list[PackageFileView]
    total: int = Field(description="How many files the package has.")
    next: str | None = Field(None, description="The next page's URL; null on the last.")


class ReportTable(BaseModel):
    fields: list[str]
    rows: list[list[Any]]


class ReportData(BaseModel):
    """The data the package's report.html shows (it embeds the same JSON)."""

    package_id: str
    package: str = Field(description="The package's name.")
    files: ReportTable
    libraries: ReportTable
    tables: dict[str, Any] = Field(description="How the page lays out its tables.")
    charts: list[dict[str, Any]] = Field(description="The charts' Plotly figures.")


@router.post(
    BASE,
    response_model=PackageCreated,
    status_code=201,
    responses={
        200: {"model": PackageCreated, "description": "The same package already existed."},
        **documented(401, 403, 404, 409, 422, 503),
        413: {"model": Problem, "description": "The upload is over api_upload_mib."},
        415: {"model": Problem, "description": "The body is not multipart/form-data."},
    },
    summary="Create a package from an uploaded manifest and queue its build",
    operation_id="create_package",
)
def create_package(
    request: Request,
    response: Response,
    presented: Presented,
    form: Annotated[NewPackage, Form(media_type="multipart/form-data")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=150)] = None,
) -> PackageCreated:
    """The package ``steward package create --no-wait`` makes, from a manifest sent as a file.

    Every file the manifest names must lie in the server's ``api_source_roots`` (S3 files
    under its ``s3://`` places); relative paths are read from ``base_dir``, which must lie
    there too. Answers 201 with the new package and its queued build, or 200 with the package
    the same name and rows already made.
    """
    db, settings = database(request), settings_of(request)
    uploads = [("manifest", form.manifest)]
    if form.workflow_manifest is not None:
        uploads.append(("workflow_manifest", form.workflow_manifest))
    fields = form.model_dump(exclude={"manifest", "workflow_manifest"})
    with signed_in(request, presented, hold=False) as caller:
        require_write(caller)
        _refuse_nul(fields)
        if idempotency_key:  # the key is claimed for this form and these files' bytes; the
            # service itself is idempotent by name and rows (the same form, the same package)
            asked = [fields, *(_digest(field, f) for field, f in uploads)]
            claimed(db, caller.user_id, idempotency_key, ["create-package", asked])
        made = package_uploads.create(
            db,
            settings,
            actor=caller.user_id,
            project=form.project,
            spec=PackageSpec(
                name=form.name,
                manifest=FilePath(),  # the upload, once it is kept
                projects=tuple(form.only_project),
                samples=tuple(form.sample),
                libraries=tuple(form.library),
                runs=tuple(form.run),
                data_types=tuple(form.data_type),
                layout=form.layout,
                mode=form.mode,
                description=form.description,
                allowed_roots=tuple(form.allow_root),
                strict_ids=form.strict_ids,
            ),
            uploads=[
                package_uploads.Upload(field, f.filename or f"{field}.csv", f.file)
                for field, f in uploads
            ],
            base_dir=form.base_dir,
            build=form.build,
        )
    response.status_code = 201 if made.created else 200
    response.headers["Location"] = f"{BASE}/{made.package.id}"
    response.headers["ETag"] = f'"{made.package.version}"'
    return PackageCreated(
        package=made.package, created=made.created, action_id=made.action_id,
        warnings=made.warnings,
    )  # fmt: skip


def _digest(field: str, upload: UploadFile) -> dict[str, str]:
    h = hashlib.sha256()
    while block := upload.file.read(1 << 20):
        h.update(block)
    upload.file.seek(0)
    return {"field": field, "filename": upload.filename or "", "sha256": h.hexdigest()}


def _refuse_nul(fields: dict[str, Any]) -> None:
    """PostgreSQL cannot store NUL: refuse it in every field, as it is in JSON bodies."""
    bad = sorted(
        name
        for name, value in fields.items()
        if any("\x00" in v for v in (value if isinstance(value, list) else [value])
               if isinstance(v, str))
    )  # fmt: skip
    if bad:
        raise ValidationFailed(
            f"NUL characters in {', '.join(bad)}",
            [Detail("NUL character", field=b, accepted="text without NUL characters")
             for b in bad],
        )  # fmt: skip


@router.post(
    BASE + "/{package_id}/build",
    response_model=BuildQueued,
    status_code=202,
    responses=documented(401, 403, 404, 409, 413, 415, 422, 503),
    summary="Queue a pending (or interrupted) package's build for the worker",
    operation_id="build_package",
)
def build_package(
    request: Request, response: Response, presented: Presented, package_id: _Id
) -> BuildQueued:
    """What ``steward package build`` asks a worker for; asking again while the build is
    queued or running answers the same action."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        view, action_id = package_build.request_build(
            database(request), actor=caller.user_id, package_id=package_id
        )
    response.headers["Location"] = f"/api/v1/jobs/{action_id}"
    return BuildQueued(package=view, action_id=action_id)


@router.get(
    BASE + "/{package_id}/contents",
    response_model=PackageContents,
    responses=documented(401, 404, 422, 503),
    summary="A package's files and bytes by data type, its warnings and its bag's place",
    operation_id="package_contents",
)
def package_contents(request: Request, presented: Presented, package_id: _Id) -> PackageContents:
    with signed_in(request, presented) as caller:
        _only(request, set())
        detail = packages.get(
            database(request), settings_of(request), actor=caller.user_id, package_id=package_id
        )
    return PackageContents(
        bag_path=detail.bag_path,
        files_by_data_type=detail.files_by_data_type,
        bytes_by_data_type=detail.bytes_by_data_type,
        warnings=detail.warnings,
    )


@router.get(
    BASE + "/{package_id}/files",
    response_model=PackageFilePage,
    responses=documented(401, 404, 422, 503),
    summary="A package's files: place in the bag, source, checksums (in path order, paged)",
    operation_id="package_files",
)
def package_files(
    request: Request,
    presented: Presented,
    package_id: _Id,
    after: Annotated[
        str | None, Query(max_length=4096, description="The last path of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FILES_PAGE)] = 1000,
) -> PackageFilePage:
    with signed_in(request, presented) as caller:
        _only(request, {"after", "limit"})
        items, total = packages.file_page(
            database(request), actor=caller.user_id, package_id=package_id, after=after,
            limit=limit,
        )  # fmt: skip
    nxt = None
    if len(items) == limit and items:
        nxt = str(request.url.include_query_params(after=items[-1].relpath))
    return PackageFilePage(items=items, total=total, next=nxt)


@router.get(
    BASE + "/{package_id}/validation",
    response_model=ValidationReport,
    responses=documented(401, 404, 422, 503),
    summary="Check a built package's bag on the server (every checksum with full=true)",
    operation_id="validate_package",
)
def validate_package(
    request: Request,
    presented: Presented,
    package_id: _Id,
    full: Annotated[
        bool, Query(description="Also read every file and compare every checksum (slow).")
    ] = False,
) -> ValidationReport:
    """What ``steward package validate`` answers: every problem found, none when valid (a
    valid bag is 200 with an empty ``problems``). A package that is not built is 422."""
    with signed_in(request, presented) as caller:
        _only(request, {"full"})
        return packages.validate(
            database(request), settings_of(request), actor=caller.user_id,
            package_id=package_id, full=full,
        )  # fmt: skip


@router.get(
    BASE + "/{package_id}/report",
    response_model=ReportData,
    responses={
        200: {
            "content": {"text/html": {"schema": {"type": "string"}}},
            "description": "The report: its HTML page (the bag's report.html), or its data "
            "as JSON.",
        },
        **documented(401, 404, 406, 422, 503),
    },
    summary="A built package's report: the offline HTML page, or its data as JSON",
    operation_id="package_report",
)
def package_report(
    request: Request,
    presented: Presented,
    package_id: _Id,
    fmt: Annotated[
        Literal["html", "json"] | None,
        Query(alias="format", description="html or json; wins over the Accept header."),
    ] = None,
) -> Any:
    """The bag's report.html — the page ``steward package report`` points at, working offline
    — or, for ``Accept: application/json`` or ``?format=json``, the data it shows."""
    with signed_in(request, presented) as caller:
        _only(request, {"format"})
        answer_as = negotiation.page_or_json(
            fmt, request.headers.get("accept"),
            refusal="a package report can be answered only as HTML or JSON",
        )  # fmt: skip
        db, settings = database(request), settings_of(request)
        if answer_as == "json":
            data = packages.report_data(db, settings, actor=caller.user_id, package_id=package_id)
            body = ReportData.model_validate({"package_id": package_id, **data})
            return JSONResponse(body.model_dump(mode="json"), headers={"Vary": "Accept"})
        path = packages.report_path(db, settings, actor=caller.user_id, package_id=package_id)
        html = path.read_bytes()
    return negotiation.page(html, f"report-{package_id}.html")
