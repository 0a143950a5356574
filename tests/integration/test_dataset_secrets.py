"""No secret reaches a list, an export, a detail, an event, a log or a message — the seed's
tracker copied private access keys into the shared sheet.

Secrets are planted wherever a sources config lets them through (the values of the variables
its ``*_env`` fields name: a real S3 key pair for SeaweedFS, a wrong secret for a second bucket
source that must fail, a bearer token for a JSON endpoint on loopback), a real crawl runs
through the command line, and then every surface is searched for the planted values: the
dataset list in every format and view, the exports' bytes (the XLSX unzipped), ``dataset show``
and ``history``, ``crawl list``/``show``, every row of every table of the database (the events
included) and every log record made meanwhile, at DEBUG. The CLI has no ``--debug``: the root
logger is set to DEBUG instead.

Secrets written into the config itself are refused by validation; the second test plants one
in every field that could carry one and checks that the refusal masks each.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from steward.adapters.storage import open_store
from steward.db.models import Base, Event
from steward.db.session import Database
from tests import s3
from tests.conftest import CliResult, Consortium
from tests.crawl_http import Endpoint, json_endpoint
from tests.crawl_trees import ACCESSION, dataset_files, write_tree

Cli = Callable[..., CliResult]
TOKEN = "tok_" + secrets.token_urlsafe(18)
WRONG_SECRET = "Wr0ng" + secrets.token_urlsafe(20)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with json_endpoint() as api:
        yield api


def _value(v: Any) -> str:
    """A TOML value: JSON's spelling is TOML's for strings, numbers and lists of them."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def _toml(sources: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for entry in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def _dump(db: Database) -> str:
    """Every row of every table, as text."""
    out: list[str] = []
    with db.read() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)):
                out.append(json.dumps(list(row), default=str, ensure_ascii=False))
    return "\n".join(out)


def _xlsx_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return "\n".join(z.read(name).decode("utf-8", "replace") for name in z.namelist())


def test_no_planted_secret_reaches_any_list_export_detail_event_or_log(
    consortium: Consortium,
    cli: Cli,
    tmp_path: Path,
    endpoint: Endpoint,
    seaweedfs: s3.SeaweedFS,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = consortium
    planted = {  # variable → the value the config's *_env fields make the crawl read
        "S3_KEY": seaweedfs.access_key,
        "S3_SECRET": seaweedfs.secret_key,
        "S3_BAD_SECRET": WRONG_SECRET,
        "EP_TOKEN": TOKEN,
    }
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    # a folder, a bucket (right keys), a bucket (a wrong secret: fails), an endpoint (a token)
    folder = tmp_path / "incoming"
    write_tree(folder, dataset_files("E-GEOD-21", "Lung"))
    write_tree(folder, dataset_files("E-MTAB-22", "Skin"))
    store = seaweedfs.config()
    bucket = open_store(f"s3://{s3_bucket}", store)
    for rel, text in dataset_files("E-MTAB-20", "Bone").items():
        bucket.write(f"loading/{rel}", text.encode())
    endpoint.page(
        "/datasets?page=1",
        {"items": [{"accession": "GSE21", "title": "Lung at GEO"}], "next": "/datasets?page=2"},
    )
    endpoint.page(
        "/datasets?page=2", {"items": [{"accession": "E-MTAB-30", "title": "Soon"}], "next": None}
    )
    common = {"project": c.project, "retries": 1}
    sources = [
        {"name": "incoming", "url": str(folder), "stage": "incoming", "pattern": ACCESSION,
         "extractors": ["mage-tab-idf", "mage-tab-sdrf"], **common},
        {"name": "bucket", "url": f"s3://{s3_bucket}/loading", "stage": "loading",
         "pattern": ACCESSION, "endpoint": seaweedfs.endpoint, "access_key_env": "S3_KEY",
         "secret_key_env": "S3_SECRET", "extractors": ["mage-tab-idf"], **common},
        {"name": "wrong-keys", "url": f"s3://{s3_bucket}/loading", "stage": "processed",
         "pattern": ACCESSION, "endpoint": seaweedfs.endpoint, "access_key_env": "S3_KEY",
         "secret_key_env": "S3_BAD_SECRET", **common},
        {"name": "geo", "url": f"{endpoint.url}/datasets?page=1", "stage": "external",
         "pattern": r"^(E-[A-Z]{4}-\d+|GSE\d+)$", "found_in": "field", "field": "accession",
         "items_field": "items", "token_env": "EP_TOKEN",
         "pagination": {"style": "link", "next_field": "next"}, **common},
    ]  # fmt: skip
    config = tmp_path / "sources.toml"
    config.write_text(_toml(sources))
    outputs: list[tuple[str, str]] = []  # (command group, what it printed)

    def run(*args: str) -> CliResult:
        result = cli(*args, "--as", c.steward)
        outputs.append((args[0], result.out + result.err))
        return result

    crawled = run("crawl", "--sources", str(config), "--json")
    assert crawled.code == 0, crawled.err
    summary = json.loads(crawled.out)
    assert summary["status"] == "partial"  # the wrong secret failed its source, nothing else
    assert [s["name"] for s in summary["sources"] if s["status"] != "ok"] == ["wrong-keys"]
    # the secrets were really used: the token was sent, the right keys listed the bucket
    assert any(h.get("Authorization") == f"Bearer {TOKEN}" for _, h in endpoint.requests)
    states = {d["accession"]: d["state"] for d in json.loads(run("dataset", "list", "--json").out)}
    assert states == {"E-GEOD-21": "incoming", "E-MTAB-22": "incoming", "E-MTAB-20": "loading",
                      "GSE21": "external", "E-MTAB-30": "external"}  # fmt: skip
    run("crawl", "--sources", str(config))  # the table summary, a second time
    run("crawl", "sources", "--sources", str(config))
    run("crawl", "sources", "--sources", str(config), "--json")
    crawl_ids = [r["id"] for r in json.loads(run("crawl", "list", "--json").out)]
    run("crawl", "list")
    for crawl_id in crawl_ids:
        run("crawl", "show", crawl_id, "--json")
        run("crawl", "show", crawl_id)
    for accession in states:
        run("dataset", "show", accession, "--json")
        run("dataset", "show", accession)
        run("dataset", "history", accession, "--json")
    files: list[bytes] = []
    for view in ((), ("--view", "track"), ("--view", "discover")):
        discover = view == ("--view", "discover")
        for fmt in ("table", "csv", "json"):
            listed = run("dataset", "list", *view, "-f", fmt)
            assert listed.code == 0, listed.err
            if discover and fmt == "csv":
                assert "E-GEOD-21 (incoming)" in listed.out  # the view has its rows
        run("dataset", "list", *view, "--json")
        for fmt in ("csv", "json", "xlsx"):
            target = tmp_path / f"list-{len(files)}.{fmt}"
            assert run("dataset", "list", *view, "-f", fmt, "-o", str(target)).code == 0
            files.append(target.read_bytes())
            exported = tmp_path / f"export-{len(files)}.{fmt}"
            assert run("dataset", "export", *view, "--to", str(exported)).code == 0
            files.append(exported.read_bytes())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    to = f"s3://{s3_bucket}/shared/overview.xlsx"
    shared = run("dataset", "export", "--view", "discover", "--to", to,
                 "--endpoint-url", seaweedfs.endpoint)  # fmt: skip
    assert shared.code == 0, shared.err
    files.append(bucket.read("shared/overview.xlsx"))
    texts = [_xlsx_text(data) if data[:2] == b"PK" else data.decode("utf-8") for data in files]
    assert sum(1 for data in files if data[:2] == b"PK") == 7
    assert any("E-GEOD-21 (incoming)" in t for t in texts)  # XML really read
    logs_dir = c.db.settings.home / "logs"
    logged = (
        [p.read_text("utf-8", "replace") for p in logs_dir.rglob("*")] if logs_dir.exists() else []
    )
    everything = {
        "command output": "\n".join(text for _, text in outputs),
        "exports": "\n".join(texts),
        "database": _dump(c.db),
        "log records": "\n".join(r.getMessage() for r in caplog.records) + caplog.text,
        "log files": "\n".join(logged),
    }
    assert "E-MTAB-20" in everything["database"]  # the dump is not empty
    for where, text in everything.items():
        for name, value in planted.items():
            if name != "S3_KEY":
                assert value not in text, f"{name}'s value in the {where}"
    # The key *id* names the key a refusal was for in the crawl's failure message (as AWS's
    # own errors do): it identifies, it does not open. It is in no dataset row, export or event.
    with c.db.read() as s:
        events = "\n".join(
            json.dumps([e.type, e.data], default=str) for e in s.scalars(select(Event))
        )
    assert "dataset" in events or "discovered" in events
    dataset_outputs = [text for group, text in outputs if group == "dataset"]
    for text in (everything["exports"], events, *dataset_outputs):
        assert seaweedfs.access_key not in text


BAD = {
    "key id": "AKIA" + "QWERTYUIOPASDFGH",
    "key secret": "Zx9Kq8WWm7Lp6Tn5Rv4Bs3Yc2Hd1Jf0GkEaUiOoP",
    "password": "Hunter2-Sekrit-Pass",
    "query token": "tq93XkL0pR7vB2nM5wQ8",
    "signature": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "access token": "ya29A0ARrdaMplanted9x8y7z",
    "endpoint secret": "eNdP0intS3cr3tV4lu3xYz12",
    "github token": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
}


def test_secrets_written_into_the_config_are_refused_and_masked_in_the_refusal(
    consortium: Consortium, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    b = BAD
    base = {"project": c.project, "pattern": ACCESSION}
    sources = [
        {"name": "a", "stage": "loading", **base,
         "url": f"s3://{b['key id']}:{b['key secret']}@bucket/prefix"},
        {"name": "b", "stage": "external", **base,
         "url": f"https://curator:{b['password']}@data.example.org/api?token={b['query token']}"},
        {"name": "c", "stage": "external", **base,
         "url": f"https://s3.example.org/b/k.json?X-Amz-Signature={b['signature']}"},
        {"name": "d", "stage": "external", **base,
         "url": f"https://api.example.org/v1/datasets?access_token={b['access token']}"},
        {"name": "e", "stage": "published", **base, "url": "s3://bucket/published",
         "endpoint": f"https://admin:{b['endpoint secret']}@s3.example.org"},
        {"name": "f", "stage": "external", **base, "url": "https://api.example.org/v1/datasets",
         "token_env": b["github token"]},
    ]  # fmt: skip
    config = tmp_path / "sources.toml"
    config.write_text(_toml(sources))
    for args in (
        ("crawl", "--sources", str(config), "--json"),
        ("crawl", "--sources", str(config)),
        ("crawl", "--sources", str(config), "--dry-run"),
        ("crawl", "sources", "--sources", str(config), "--json"),
        ("crawl", "sources", "--sources", str(config)),
    ):
        result = cli(*args, "--as", c.steward)
        assert result.code == 2, result
        text = result.out + result.err
        assert "***" in text
        for name, value in BAD.items():
            assert value not in text, f"the {name} in the refusal of {args}"
        if "--json" in args:
            fields = {e["field"] for e in json.loads(result.out)["errors"]}
            assert {f"sources[{i}].url" for i in range(4)} <= fields
            assert {"sources[4].endpoint", "sources[5].token_env"} <= fields
    dump = _dump(c.db)
    for value in BAD.values():
        assert value not in dump
