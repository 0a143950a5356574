"""What counts as a secret written into a config, and how it is masked."""

from __future__ import annotations

import pytest

from steward.crawl.inline_secrets import env_name_ok, mask, secret_field_name, secret_kind


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("AKIAQ3EGRN7LZ4XW2K5T", "AWS access key id"),
        ("tH9pW2xK7vL4qN8mR3sF6jB1cD5gA0eZyUiOhPwQ", "AWS secret"),
        ("https://user:pass@host/x", "credentials in the URL"),
        ("https://tokenonly@host/x", "credentials in the URL"),
        ("https://host/x?api_key=abc", "credential in the URL's query"),
        ("s3://b/k?X-Amz-Signature=abc", "credential in the URL's query"),
        ("ghp_k3Lm9Qx2Vb7Tz4Rw8Ys1Hn6Jd5Fg0Ca3Ep2W", "access token"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "JSON web token"),
        ("-----BEGIN RSA PRIVATE KEY-----", "private key"),
        ("password=hunter2", "credential"),
        ("Bearer abcdefgh", "credential"),
        ("Zq8xR2mV7kN4pW9tB3yL6sH1fD5gJ0cQ", "generated key"),
    ],
)
def test_secret_shapes_are_recognised(value: str, kind: str) -> None:
    found = secret_kind(value)
    assert found is not None
    assert kind in found


@pytest.mark.parametrize(
    "value",
    [
        "/nfs/production/atlas/loading/E-MTAB-1234",
        "/nfs/production/Atlas2024Data/loading/ProjectX",
        "s3://atlas-bucket/loading",
        "https://www.ebi.ac.uk/api/datasets?page=2&size=100",
        r"^E-[A-Z]{4}-\d+$",
        "ATLAS_S3_SECRET_ACCESS_KEY",
        "MyVeryLongEnvironmentVar1",
        "Atlas2024Production-loading",
        "GenomeAnalysisToolkit4Version2Build17",
        "E-MTAB-1234_2024-01-01_SomethingBig9",
        "11f6ad8ec52a2984abaafd7c3b516503785c2072",  # a sha1: lower-case hex
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
    ],
)
def test_ordinary_values_are_not_secrets(value: str) -> None:
    assert secret_kind(value) is None
    assert mask(value) == value


def test_mask_keeps_the_rest_of_the_text() -> None:
    assert mask("https://u:p@host/x?page=2&token=abc") == "https://***@host/x?page=2&token=***"
    assert mask("key AKIAQ3EGRN7LZ4XW2K5T here") == "key *** here"


def test_field_names() -> None:
    for name in ("secret_key", "password", "aws_access_key_id", "token"):
        assert secret_field_name(name), name
    for name in ("token_env", "access_key_env", "pattern"):
        assert not secret_field_name(name), name
    assert env_name_ok("ATLAS_S3_KEY")
    assert not env_name_ok("wJalr/K7MDENG")
