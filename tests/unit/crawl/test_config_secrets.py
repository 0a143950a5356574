"""Secrets written into a sources config are refused, and no message ever shows one.

The seed tracker leaked private access keys into a shared spreadsheet. Here every field of a
source is planted with a secret in turn (and all at once): each is reported at its field path,
and the rendered error — message, details, problem document — contains none of them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from steward.crawl.config import parse_crawl_config
from steward.errors import ValidationFailed

AWS_KEY_ID = "AKIAQ3EGRN7LZ4XW2K5T"
AWS_SECRET = "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"
TOKEN = "ghp_" + "k3Lm9Qx2Vb7Tz4Rw8Ys1Hn6Jd5Fg0Ca3Ep2Wu"
RANDOM = "Zq8xR2mV7kN4pW9tB3yL6sH1fD5gJ0cQ"
PASSWORD = "hunter2-but-longer"
SECRETS = (AWS_KEY_ID, AWS_SECRET, TOKEN, RANDOM, PASSWORD)


def base(url: str = "/data") -> dict[str, Any]:
    return {"url": url, "project": "p1", "stage": "loading", "pattern": "^E-"}


def render(exc: ValidationFailed) -> str:
    return "\n".join(
        [str(exc), json.dumps(exc.as_problem()), *(str(d) for d in exc.details)]
        + [repr(d) for d in exc.details]
    )


def refuse(entry: dict[str, Any]) -> tuple[dict[str, str], str]:
    with pytest.raises(ValidationFailed) as caught:
        parse_crawl_config({"crawl": {"sources": [entry]}})
    return {d.field or "": str(d) for d in caught.value.details}, render(caught.value)


# Every field of every kind of source, with a secret in it.
PLANTED = [
    ("url", base("https://alice:" + PASSWORD + "@ebi.example.org/api")),
    ("url", base("https://" + TOKEN + "@ebi.example.org/api")),
    ("url", base("https://ebi.example.org/api?access_token=" + RANDOM)),
    ("url", base("s3://bucket/x?X-Amz-Signature=" + RANDOM)),
    ("name", {**base(), "name": AWS_SECRET}),
    ("stage", {**base(), "stage": TOKEN}),
    ("pattern", {**base(), "pattern": AWS_KEY_ID}),
    ("tech[1]", {**base(), "tech": ["rna-seq", RANDOM]}),
    ("include[0]", {**base(), "include": [AWS_SECRET]}),
    ("exclude[0]", {**base(), "exclude": ["password=" + PASSWORD]}),
    ("extractors[0]", {**base(), "extractors": [TOKEN]}),
    ("file", {**base(), "found_in": "file", "file": RANDOM}),
    ("fallback_encoding", {**base(), "fallback_encoding": AWS_SECRET}),
    ("endpoint", {**base("s3://bucket"), "endpoint": "https://u:" + PASSWORD + "@s3.example.org"}),
    ("region", {**base("s3://bucket"), "region": AWS_KEY_ID}),
    (
        "access_key_env",
        {**base("s3://bucket"), "access_key_env": AWS_KEY_ID, "secret_key_env": "S"},
    ),
    (
        "secret_key_env",
        {**base("s3://bucket"), "access_key_env": "K", "secret_key_env": AWS_SECRET},
    ),
    ("token_env", {**base("https://h/api"), "token_env": TOKEN}),
    ("field", {**base("https://h/api"), "field": RANDOM}),
    ("items_field", {**base("https://h/api"), "items_field": TOKEN}),
    (
        "pagination.next_field",
        {**base("https://h/api"), "pagination": {"style": "link", "next_field": AWS_SECRET}},
    ),
    ("secret_key", {**base("s3://bucket"), "secret_key": AWS_SECRET}),
    ("access_key", {**base("s3://bucket"), "access_key": AWS_KEY_ID}),
    ("token", {**base("https://h/api"), "token": TOKEN}),
    ("password", {**base(), "password": PASSWORD}),
    ("notes", {**base(), "notes": "key " + AWS_KEY_ID}),
    (
        "headers.Authorization",
        {**base("https://h/api"), "headers": {"Authorization": "Bearer " + RANDOM}},
    ),
]


@pytest.mark.parametrize(("field", "entry"), PLANTED, ids=[f for f, _ in PLANTED])
def test_a_secret_in_any_field_is_reported_there_and_never_shown(
    field: str, entry: dict[str, Any]
) -> None:
    found, rendered = refuse(entry)
    where = f"crawl.sources[0].{field}"
    assert where in found, f"nothing reported at {where}: {found}"
    for secret in SECRETS:
        assert secret not in rendered


def test_secrets_everywhere_at_once_are_each_reported_once() -> None:
    entry = {
        **base("https://alice:" + PASSWORD + "@ebi.example.org/api"),
        "token_env": TOKEN,
        "items_field": AWS_KEY_ID,
        "token": RANDOM,
        "tech": [AWS_SECRET],
    }
    found, rendered = refuse(entry)
    secret_fields = {f for f, text in found.items() if "written into the config" in text}
    assert secret_fields == {
        "crawl.sources[0].url",
        "crawl.sources[0].token_env",
        "crawl.sources[0].items_field",
        "crawl.sources[0].token",
        "crawl.sources[0].tech[0]",
    }
    for secret in SECRETS:
        assert secret not in rendered
    # and the refusal says what to write instead
    assert "token_env" in found["crawl.sources[0].token"]


def test_masking_keeps_what_locates_the_problem() -> None:
    found, _ = refuse(base("https://alice:" + PASSWORD + "@ebi.example.org/api?page=2"))
    assert "https://***@ebi.example.org/api?page=2" in found["crawl.sources[0].url"]


def test_ordinary_values_are_not_taken_for_secrets() -> None:
    entry = {
        "name": "Atlas2024Production-loading",
        "url": "/nfs/production/Atlas2024Data/loading/ProjectX",
        "project": "atlas-2024",
        "stage": "loading",
        "tech": ["rna-seq", "sc-rna-seq-10x-v3"],
        "pattern": r"^(?P<accession>E-(?:MTAB|GEOD|ERAD)-\d{1,7})(?:_v\d+)?$",
        "include": ["**/*.idf.txt", "**/E-MTAB-1234_2024-01-01_SomethingBig9/**"],
        "exclude": ["**/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881/**"],
    }
    config = parse_crawl_config({"crawl": {"sources": [entry]}})
    assert config.sources[0].name == "Atlas2024Production-loading"
    s3 = {
        "url": "s3://atlas-2024-data/published",
        "project": "atlas-2024",
        "stage": "published",
        "pattern": "^E-",
        "access_key_env": "ATLAS_PRODUCTION_S3_ACCESS_KEY_ID",
        "secret_key_env": "ATLAS_PRODUCTION_S3_SECRET_ACCESS_KEY",
        "endpoint": "https://s3.embassy.ebi.ac.uk",
    }
    assert parse_crawl_config({"crawl": {"sources": [s3]}}).sources[0].kind == "s3"
