"""GA4GH Passport visas over real HTTP: an approved request yields one signed
ControlledAccessGrants visa per dataset, verified here as a clearinghouse would (RS256 only,
the key found by `kid` in the served JWKS, `exp` checked); revoked, expired and undecided
requests yield none; only the user and administrators may ask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import update

from steward.db.models import AccessRequest
from steward.domain.requests import RequestFields
from steward.services import requests, tokens
from steward.timeutil import utcnow
from tests.api_server import serving
from tests.conftest import Consortium


@pytest.fixture
def api(consortium: Consortium) -> Iterator[str]:
    with serving(consortium.db.settings) as url:
        yield url


def _approved(c: Consortium, datasets: tuple[str, ...] = ("raw/wgs",), days: int = 30) -> str:
    rid = requests.create(
        c.db, actor=c.requester, project=c.project, submit=True,
        fields=RequestFields("Study", "Uni", "Prof", "Research", datasets=datasets),
    ).id  # fmt: skip
    requests.act(c.db, actor=c.steward, request_id=rid, command="assign-reviewer",
                 reviewer=c.reviewer)  # fmt: skip
    requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve",
                 expires_at=utcnow() + timedelta(days=days))  # fmt: skip
    return rid


def _get(api: str, c: Consortium, who: str, path: str, scope: str = "read") -> httpx.Response:
    token = tokens.create(c.db, actor=who, scope=scope, expires_in=timedelta(hours=1)).secret
    return httpx.get(f"{api}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _verify(api: str, token: str) -> dict[str, Any]:
    """What a Passport clearinghouse does with a visa from an issuer it trusts."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "vnd.ga4gh.visa+jwt"
    assert header["jku"] == f"{api}/.well-known/jwks.json"  # allow-listed for this issuer
    keys = httpx.get(header["jku"], timeout=60).json()["keys"]
    (jwk,) = [k for k in keys if k["kid"] == header["kid"]]
    public = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    return dict(
        jwt.decode(token, public, algorithms=["RS256"], options={"require": ["exp", "iat"]})
    )  # type: ignore[arg-type]


def test_an_approved_request_yields_a_verifiable_visa_per_dataset(
    consortium: Consortium, api: str
) -> None:
    c = consortium
    rid = _approved(c, datasets=("raw/wgs", "phenotypes"))
    answer = _get(api, c, c.requester, f"/api/v1/users/{c.requester}/visas")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["visas"]) == 2
    assert body["ga4gh_passport_v1"] == [v["jwt"] for v in body["visas"]]
    request = requests.get(c.db, actor=c.steward, request_id=rid).request
    for visa in body["visas"]:
        claims = _verify(api, visa["jwt"])
        grant = claims["ga4gh_visa_v1"]
        assert claims["iss"] == api
        assert claims["sub"] == c.requester
        assert grant["type"] == "ControlledAccessGrants"
        assert grant["by"] == "dac"
        assert grant["value"] == f"{api}/api/v1/projects/{c.project}/datasets/{visa['dataset']}"
        assert grant["source"] == f"{api}/api/v1/projects/{c.project}"
        assert request.decided_at is not None
        assert request.expires_at is not None
        assert grant["asserted"] == int(request.decided_at.timestamp())
        assert claims["exp"] == int(request.expires_at.timestamp())
    # A forged or altered visa does not verify.
    token = body["visas"][0]["jwt"]
    head, payload, sig = token.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(api, f"{head}.{payload}.{sig[:-4]}AAAA")
    # The key is kept privately in STEWARD_HOME and is the same on the next start.
    key_file = c.db.settings.home / "keys" / "visa-signing-rs256.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_file.parent).st_mode) == 0o700


def test_revoked_expired_and_undecided_requests_yield_no_visa(
    consortium: Consortium, api: str
) -> None:
    c = consortium
    revoked = _approved(c)
    requests.act(c.db, actor=c.steward, request_id=revoked, command="revoke", reason="misuse")
    lapsed = _approved(c)
    with c.db.transaction() as s:  # its expiry passed; the expiry job has not run yet
        s.execute(update(AccessRequest).where(AccessRequest.id == lapsed)
                  .values(expires_at=utcnow() - timedelta(minutes=1)))  # fmt: skip
    requests.create(
        c.db, actor=c.requester, project=c.project, submit=True,
        fields=RequestFields("Later", "Uni", "Prof", "Research", datasets=("raw/wgs",)),
    )  # fmt: skip
    body = _get(api, c, c.requester, f"/api/v1/users/{c.requester}/visas").json()
    assert body["visas"] == []
    current = _approved(c)
    body = _get(api, c, c.requester, f"/api/v1/users/{c.requester}/visas").json()
    assert [v["request_id"] for v in body["visas"]] == [current]


def test_only_the_user_and_administrators_see_their_visas(consortium: Consortium, api: str) -> None:
    c = consortium
    _approved(c)
    path = f"/api/v1/users/{c.requester}/visas"
    assert _get(api, c, c.admin, path, scope="admin").status_code == 200
    # An administrator's token without the admin scope has no administrator's powers.
    assert _get(api, c, c.admin, path, scope="write").status_code == 404
    other = _get(api, c, c.requester2, path)
    unknown = _get(api, c, c.requester2, "/api/v1/users/nobody/visas")
    assert other.status_code == unknown.status_code == 404
    assert other.json()["detail"].replace(c.requester, "X") == unknown.json()["detail"].replace(
        "nobody", "X"
    )
    steward = _get(api, c, c.steward, path)
    assert steward.status_code == 404
    # The issuer is this server's configured address, whatever Host the caller sends.
    token = tokens.create(c.db, actor=c.requester, scope="read", expires_in=timedelta(hours=1))
    forged = httpx.get(f"{api}{path}", headers={"Authorization": f"Bearer {token.secret}",
                                                 "Host": "evil.example"}, timeout=60)  # fmt: skip
    claims = jwt.decode(forged.json()["visas"][0]["jwt"], options={"verify_signature": False})
    assert claims["iss"] == api
    assert claims["ga4gh_visa_v1"]["value"].startswith(f"{api}/")
    jwks = httpx.get(f"{api}/.well-known/jwks.json", timeout=60).json()
    assert set(jwks["keys"][0]) >= {"kty", "n", "e", "kid", "alg"}
    assert "d" not in jwks["keys"][0]  # the public half only


def test_the_visa_examples_in_the_docs_run_as_written(consortium: Consortium, api: str) -> None:
    import json
    import re
    import subprocess
    from pathlib import Path

    c = consortium
    _approved(c)
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    section = text[text.index("## GA4GH Passport visas") :]
    section = section[: section.index("\n## ")]
    (block,) = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)
    token = tokens.create(c.db, actor=c.requester, scope="read", expires_in=timedelta(hours=1))
    env = dict(os.environ, TOKEN=token.secret)
    answers = []
    for line in [ln for ln in block.splitlines() if ln.strip()]:
        real = line.replace("http://127.0.0.1:8000", api).replace("/carol/", f"/{c.requester}/")
        run = subprocess.run(["bash", "-c", real], env=env, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
        assert run.returncode == 0, (line, run.stderr)
        answers.append(json.loads(run.stdout))
    assert answers[0]["keys"]
    assert len(answers[1]["visas"]) == 1
