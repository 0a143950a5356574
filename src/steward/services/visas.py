"""GA4GH Passport 1.2 visas for approved access: one ``ControlledAccessGrants`` visa per
dataset of each approved, unexpired request, signed RS256 by this Steward.

A revoked, expired or not-yet-approved request yields no visa: visas are minted from the
ledger's current state on each call, never stored, so there is nothing to revoke but the
request. The signing key is made on first use and kept in ``STEWARD_HOME/keys`` (0600 in a
0700 folder); its public half is served as a JWKS for clearinghouses to verify with.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel
from sqlalchemy import select
from ulid import ULID

from steward.config import Settings
from steward.db.models import AccessRequest
from steward.db.session import Database
from steward.errors import ConfigurationError, Detail
from steward.services.access import audited, not_found, require_user
from steward.timeutil import utcnow

KEY_FILE = "visa-signing-rs256.pem"
VISA_TYPE = "vnd.ga4gh.visa+jwt"
WITHOUT_EXPIRY = timedelta(days=365)
"""How long a visa of a request approved without an expiry date lasts."""


class Visa(BaseModel):
    jwt: str
    request_id: str
    project_id: str
    dataset: str
    value: str
    asserted: datetime
    expires_at: datetime


class Visas(BaseModel):
    user: str
    visas: list[Visa]
    ga4gh_passport_v1: list[str]
    """The visas alone, as a Passport carries them."""


@dataclass(frozen=True)
class SigningKey:
    private: rsa.RSAPrivateKey
    kid: str

    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}


def _kid(key: rsa.RSAPrivateKey) -> str:
    """The RFC 7638 thumbprint of the public key: the same key always has the same id."""
    import base64
    import hashlib

    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    canonical = json.dumps(
        {"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}, separators=(",", ":")
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    )


def signing_key(settings: Settings) -> SigningKey:
    """This Steward's visa signing key, made the first time it is needed.

    Published with a hard link from a private temporary file, so two processes starting at
    once end up with one key (the loser reads the winner's), never a half-written file."""
    folder = settings.home / "keys"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # also when it was made by hand, or before with a looser umask
    path = folder / KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = folder / f".{KEY_FILE}.{os.getpid()}.{ULID()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return _load(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: int) -> SigningKey:
    """Parsed once per file version (the mtime is part of the key: a replaced key is read)."""
    del mtime
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        loaded = None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ConfigurationError(
            f"{path} is not an RSA private key in PEM: move it away to have a new one made",
            [Detail("not an RSA key", field="STEWARD_HOME/keys", value=str(path))],
        )
    return SigningKey(loaded, _kid(loaded))


def jwks(settings: Settings) -> dict[str, Any]:
    return {"keys": [signing_key(settings).jwk()]}


def dataset_url(issuer: str, project_id: str, dataset: str) -> str:
    return f"{issuer}/api/v1/projects/{quote(project_id)}/datasets/{quote(dataset, safe='/')}"


def visas_for(
    db: Database, settings: Settings, *, actor: str | None, user_id: str, issuer: str
) -> Visas:
    """The visas ``user_id`` holds now; only they and administrators may ask."""
    now = utcnow()
    with (
        audited(db, actor=actor, action="visas", subject_kind="user", subject_id=user_id[:40]),
        db.read() as s,
    ):
        me = require_user(s, actor)
        if me.id != user_id and not me.is_admin:
            raise not_found("user", "user", user_id, reason=f"{me.id} asked for {user_id}'s visas")
        rows = list(
            s.scalars(
                select(AccessRequest)
                .where(AccessRequest.requester == user_id, AccessRequest.state == "approved")
                .order_by(AccessRequest.decided_at, AccessRequest.id)
            )
        )
    key = signing_key(settings)
    header = {"typ": VISA_TYPE, "kid": key.kid, "jku": f"{issuer}/.well-known/jwks.json"}
    out: list[Visa] = []
    for r in rows:
        asserted = r.decided_at or r.state_since
        expires = r.expires_at or asserted + WITHOUT_EXPIRY
        if expires <= now:
            continue  # approved, but its time is over (the expiry job has not run yet)
        for dataset in r.datasets:
            value = dataset_url(issuer, r.project_id, dataset)
            claims = {
                "iss": issuer,
                "sub": user_id,
                "iat": int(now.timestamp()),
                "exp": int(expires.timestamp()),
                "jti": str(ULID()),
                "ga4gh_visa_v1": {
                    "type": "ControlledAccessGrants",
                    "value": value,
                    "source": f"{issuer}/api/v1/projects/{quote(r.project_id)}",
                    "by": "dac",
                    "asserted": int(asserted.timestamp()),
                },
            }
            token = jwt.encode(claims, key.private, algorithm="RS256", headers=header)
            out.append(
                Visa(
                    jwt=token,
                    request_id=r.id,
                    project_id=r.project_id,
                    dataset=dataset,
                    value=value,
                    asserted=asserted,
                    expires_at=expires,
                )
            )
    return Visas(user=user_id, visas=out, ga4gh_passport_v1=[v.jwt for v in out])
