"""Credentials read from the environment when used; reachability of folder sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.crawl.credentials import MissingEnv, bearer_token, missing_env, s3_config
from steward.crawl.listing import open_source
from steward.crawl.model import SourceStatus
from steward.crawl.reach import Reach, reachable
from steward.errors import ConfigurationError
from steward.redact import redact
from tests.crawl_trees import shared_tmp, source, unprivileged

S3 = {
    "url": "s3://atlas-data/loading",
    "endpoint": "https://s3.example.org",
    "access_key_env": "ATLAS_KEY",
    "secret_key_env": "ATLAS_SECRET",
}


def test_s3_credentials_come_from_the_named_variables_and_are_remembered() -> None:
    config = source(**S3)
    secret = "kV3pZ9-secret-from-the-environment"
    cfg = s3_config(
        config, {"ATLAS_KEY": "AKIDEXAMPLE", "ATLAS_SECRET": secret, "AWS_REGION": "eu-west-2"}
    )
    assert (cfg.endpoint, cfg.region, cfg.access_key_id, cfg.secret_access_key) == (
        "https://s3.example.org",
        "eu-west-2",
        "AKIDEXAMPLE",
        secret,
    )
    assert redact(f"boom: {secret}") == "boom: ***"  # never shown from now on


def test_without_named_variables_the_standard_aws_ones_are_used() -> None:
    config = source(url="s3://atlas-data")
    cfg = s3_config(
        config,
        {"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_ENDPOINT_URL": "http://h:1"},
    )
    assert (cfg.endpoint, cfg.access_key_id) == ("http://h:1", "K")


def test_unset_variables_are_named_and_fail_only_their_source() -> None:
    config = source(**S3)
    missing = missing_env(config, {"ATLAS_KEY": "k"})
    assert [(type(d), d.field, d.value) for d in missing] == [
        (MissingEnv, "crawl.sources[0].secret_key_env", "ATLAS_SECRET")
    ]
    with pytest.raises(ConfigurationError, match="ATLAS_SECRET"):
        s3_config(config, {"ATLAS_KEY": "k"})
    listing = open_source(config, environ={}).list()
    assert list(listing) == []
    assert listing.outcome.status is SourceStatus.FAILED
    assert "ATLAS_KEY, ATLAS_SECRET" in listing.outcome.problems[0].message
    result = reachable(config, environ={})
    assert (result.status, result.message) == (
        Reach.MISSING_CREDENTIALS,
        "set ATLAS_KEY, ATLAS_SECRET",
    )


def test_a_bearer_token_is_read_and_remembered() -> None:
    config = source(url="https://h.example.org/api", token_env="EP_TOKEN")
    assert bearer_token(config, {"EP_TOKEN": "tok-1234567890"}) == "tok-1234567890"
    assert "tok-1234567890" not in redact("Authorization failed for tok-1234567890")
    assert bearer_token(source(url="https://h.example.org/api"), {}) is None


def test_folder_reachability(tmp_path: Path) -> None:
    assert reachable(source(url=str(tmp_path))).status is Reach.REACHABLE
    assert reachable(source(url=str(tmp_path / "absent"))).status is Reach.NOT_FOUND
    (tmp_path / "file").write_text("x")
    assert reachable(source(url=str(tmp_path / "file"))).status is Reach.NOT_FOUND
    with shared_tmp() as shared:
        locked = shared / "locked"
        locked.mkdir(mode=0o000)
        with unprivileged():
            result = reachable(source(url=str(locked)))
        assert (result.status, result.ok) == (Reach.DENIED, False)
