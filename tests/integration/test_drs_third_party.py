"""Steward's GA4GH DRS 1.5 driven by third-party clients from PyPI, against a real server on
loopback over https (a throwaway CA the clients are told to trust):

- GA4GH's own ``ga4gh-drs-client`` (its ``drs get`` command): a blob's and a bundle's
  metadata, and a whole bundle downloaded through the ``/access`` presigned links once the
  package is pushed to S3 (SeaweedFS), every file checked against its ``md5`` by the client;
- ELIXIR Cloud & AAI's ``drs-cli`` (``DRSClient``): objects and access URLs parsed into its
  models, the bytes behind the link checked here against the object's checksums.

Both send a bearer token; who has none hears 401, who may not see the package 404.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import importlib.util
import ipaddress
import json
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from steward.config import Settings
from steward.services import packages, shares, tokens
from tests.api_server import serving
from tests.conftest import Consortium
from tests.integration import test_drs
from tests.packaging_data import Dataset

ALGORITHMS = {"sha-256": "sha256", "md5": "md5"}

# The DRS tests' fixtures: S3 settings for SeaweedFS, a small dataset, a package built from it.
s3_settings, data, built = test_drs.s3_settings, test_drs.data, test_drs.built


# --- https on loopback ------------------------------------------------------------------------


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 it signed: (CA, certificate, key)."""
    root = tmp_path_factory.mktemp("tls")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Steward test CA", ca_key, None, ca_key, ca=True)
    leaf = _cert("127.0.0.1", key, ca, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (root / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return root / "ca.pem", root / "cert.pem", root / "key.pem"


@contextmanager
def _https(
    settings: Settings, tls: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``https://127.0.0.1:PORT``, trusted by ``requests`` (both clients use it) meanwhile."""
    ca, cert, key = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    for name in (
        "CURL_CA_BUNDLE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    with serving(settings, tls=(cert, key)) as url:
        yield url


@pytest.fixture
def api(
    consortium: Consortium,
    s3_settings: Settings,
    tls: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The server at its own address: its ``drs://`` URIs carry its port."""
    with _https(s3_settings, tls, monkeypatch) as url:
        yield url


@pytest.fixture
def api_on_443(
    consortium: Consortium,
    s3_settings: Settings,
    tls: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The server with the public address ``https://127.0.0.1:443``, as one deployed on https's
    own port would be: its ``drs://`` URIs carry no port, as DRS 1.5 requires."""
    public = s3_settings.model_copy(update={"public_url": "https://127.0.0.1:443"})
    with _https(public, tls, monkeypatch) as url:
        yield url


def _token(c: Consortium, user: str) -> str:
    return tokens.create(c.db, actor=user, scope="read", expires_in=timedelta(hours=1)).secret


def _files(c: Consortium, package_id: str) -> list[packages.PackageFileView]:
    """The package's files in byte order of their paths: blob ``pkg_….N`` is the N-th."""
    return sorted(
        packages.files(c.db, actor=c.steward, package_id=package_id), key=lambda f: f.relpath
    )


def _source(data: Dataset, f: packages.PackageFileView) -> bytes:
    """The bytes the package file was made from."""
    return data.files[unquote(urlsplit(f.source_uri).path)]


def _check(checksums: list[dict[str, str]], content: bytes) -> None:
    known = [c for c in checksums if c["type"] in ALGORITHMS]
    assert {c["type"] for c in known} == {"sha-256", "md5"}, checksums
    for c in known:
        assert hashlib.new(ALGORITHMS[c["type"]], content).hexdigest() == c["checksum"], c


# --- ga4gh-drs-client -------------------------------------------------------------------------


class Ran(NamedTuple):
    exit_code: int
    output: str


@pytest.fixture
def drs_get(api: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """``drs get https://127.0.0.1:PORT ARGS…`` of ga4gh-drs-client, run in this process."""
    if importlib.util.find_spec("pkg_resources") is None:
        # ga4gh.drs.util.download_tree imports three names from setuptools' pkg_resources (and
        # never uses them) without declaring setuptools: a packaging fault of the client, not a
        # DRS matter. Stand in for it rather than install setuptools for nothing.
        stub = types.ModuleType("pkg_resources")
        for name in ("resource_string", "resource_listdir", "resource_filename"):
            setattr(stub, name, None)
        monkeypatch.setitem(sys.modules, "pkg_resources", stub)
    with warnings.catch_warnings():  # its source has "\s" in plain strings (invalid escapes)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        from ga4gh.drs.definitions.object import DRSObject
        from ga4gh.drs.entrypoint import main

    # The client reads access_method["access_id"] unguarded, so an access method without one
    # (our `file` method: a direct access_url) raises KeyError and the object cannot be
    # downloaded at all. DRS 1.5 makes access_id optional — AccessMethod (components/schemas/
    # AccessMethod.yaml): "at least one of access_url and access_id must be provided" — so the
    # client is at fault; give it the null it expects, and change nothing else.
    initialize = DRSObject._DRSObject__initialize_access_methods

    def tolerant(self: Any) -> Any:
        for method in self.json.get("access_methods") or []:
            method.setdefault("access_id", None)
        return initialize(self)

    monkeypatch.setattr(DRSObject, "_DRSObject__initialize_access_methods", tolerant)

    def run(*args: str) -> Ran:
        with warnings.catch_warnings():  # it leaves files and sockets for the collector to close
            warnings.simplefilter("ignore", ResourceWarning)
            result = CliRunner().invoke(main, ["get", api, *args])
            ran = Ran(result.exit_code, result.output)
            # The traceback of its sys.exit holds its last response and, through it, an open
            # https connection the server would wait 30 s for when it stops: let go of it now.
            del result
            gc.collect()
        return ran

    return run


def test_ga4gh_drs_client_reads_a_blob_and_a_bundle_with_a_bearer_token(
    consortium: Consortium,
    built: packages.PackageView,
    drs_get: Callable[..., Ran],
    api: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = consortium
    token = _token(c, c.viewer)
    files = _files(c, built.id)
    host = api.removeprefix("https://")

    blob_json = tmp_path / "blob.json"
    run = drs_get(f"{built.id}.1", "-t", token, "-m", str(blob_json))
    assert run.exit_code == 0, run.output
    blob = json.loads(blob_json.read_text())
    first = files[0]
    assert blob["id"] == f"{built.id}.1"
    assert blob["self_uri"] == f"drs://{host}/{built.id}.1"
    assert blob["size"] == first.size
    assert {(ck["type"], ck["checksum"]) for ck in blob["checksums"]} == {
        ("sha-256", first.sha256),
        ("md5", first.md5),
    }
    assert [m["type"] for m in blob["access_methods"]] == ["file"]
    assert blob["access_methods"][0]["access_url"]["url"].endswith("/" + first.relpath)

    bundle_json = tmp_path / "bundle.json"
    run = drs_get(built.id, "-t", token, "-m", str(bundle_json))
    assert run.exit_code == 0, run.output
    bundle = json.loads(bundle_json.read_text())
    assert bundle["id"] == built.id
    assert bundle["size"] == sum(f.size or 0 for f in files)
    assert [(m["name"], m["id"], m["drs_uri"]) for m in bundle["contents"]] == [
        (f.relpath, f"{built.id}.{n}", [f"drs://{host}/{built.id}.{n}"])
        for n, f in enumerate(files, start=1)
    ]

    # Without a token: 401; with the token of someone who may not see the package: 404. The
    # client logs the status and exits 1 either way.
    caplog.clear()
    run = drs_get(f"{built.id}.1", "-m", str(tmp_path / "none.json"))
    assert run.exit_code == 1
    assert "Invalid status code (401)" in caplog.text
    caplog.clear()
    outsider = _token(c, c.requester)
    run = drs_get(f"{built.id}.1", "-t", outsider, "-m", str(tmp_path / "hidden.json"))
    assert run.exit_code == 1
    assert "Invalid status code (404)" in caplog.text
    assert not (tmp_path / "hidden.json").exists()


def test_ga4gh_drs_client_downloads_a_pushed_bundle_and_checks_every_file(
    consortium: Consortium,
    built: packages.PackageView,
    data: Dataset,
    s3_settings: Settings,
    s3_bucket: str,
    drs_get: Callable[..., Ran],
    tmp_path: Path,
) -> None:
    c = consortium
    shares.push(
        c.db, s3_settings, actor=c.steward, package_id=built.id, destination=f"s3://{s3_bucket}/out"
    )
    token = _token(c, c.viewer)
    files = _files(c, built.id)
    out = tmp_path / "out"
    out.mkdir()
    # -d: download every blob of the bundle (the client resolves each member's drs_uri, then
    # the s3 method's access id to a presigned link: it cannot read `file` or `s3` URLs);
    # -v: check each download against the object's checksum (md5 first, by its ranking).
    run = drs_get(
        built.id, "-t", token, "-d", "-v", "-o", str(out), "-m", str(tmp_path / "bundle.json")
    )
    report = (out / "drs_download_report.txt").read_text()
    assert run.exit_code == 0, (run.output, report)
    rows = [line.split("\t") for line in report.splitlines() if line.startswith(built.id)]
    assert len(rows) == len(files)
    for n, f in enumerate(files, start=1):
        got = (out / f"{built.id}.{n}" / f.relpath.rsplit("/", 1)[-1]).read_bytes()
        assert got == _source(data, f)
        assert hashlib.sha256(got).hexdigest() == f.sha256
    assert {tuple(row[3:6]) for row in rows} == {("COMPLETED", "PASSED", "md5")}
    assert {row[6] for row in rows} == {f.md5 for f in files}


# --- drs-cli ----------------------------------------------------------------------------------


def _drs_cli() -> Any:
    """drs-cli's ``DRSClient`` class. Importing the module sets ``sys.excepthook`` to a handler
    that only logs; put Python's back."""
    hook = sys.excepthook
    try:
        from drs_cli.client import DRSClient
    finally:
        sys.excepthook = hook
    return DRSClient


def test_drs_cli_resolves_drs_uris_and_access_urls_whose_bytes_check_out(
    consortium: Consortium,
    built: packages.PackageView,
    data: Dataset,
    s3_settings: Settings,
    s3_bucket: str,
    api_on_443: str,
) -> None:
    from drs_cli.models import AccessURL, DrsObject, Error

    drs_client = _drs_cli()
    c = consortium
    files = _files(c, built.id)
    share = shares.push(
        c.db, s3_settings, actor=c.steward, package_id=built.id, destination=f"s3://{s3_bucket}/out"
    )
    # drs-cli reads hostname-based URIs as DRS 1.5 defines them, drs://host/id with no port
    # (its pattern has none): a client made from one talks to https://host:443/ga4gh/drs/v1
    # unless told the port — which only this test's server, on a free port, needs.
    port = int(api_on_443.rsplit(":", 1)[1])
    uri = f"drs://127.0.0.1/{built.id}"
    client = drs_client(uri, port=port, token=_token(c, c.viewer))
    assert client.uri == f"{api_on_443}/ga4gh/drs/v1"

    bundle = client.get_object(uri)
    assert isinstance(bundle, DrsObject), bundle
    assert (bundle.id, bundle.self_uri) == (built.id, uri)
    assert bundle.size == sum(f.size or 0 for f in files)
    joined = "".join(sorted(f.sha256 or "" for f in files))
    assert [(ck.type, ck.checksum) for ck in bundle.checksums] == [
        ("sha-256", hashlib.sha256(joined.encode()).hexdigest())
    ]
    assert bundle.access_methods is None  # a bundle's bytes are its members'
    # (drs-cli's DrsObject has no `contents` field: it cannot list a bundle's members.)

    for n, f in enumerate(files, start=1):
        blob = client.get_object(f"{uri}.{n}")
        assert isinstance(blob, DrsObject), blob
        assert (blob.id, blob.self_uri) == (f"{built.id}.{n}", f"{uri}.{n}")
        assert (blob.size, blob.aliases) == (f.size, [f.relpath])
        checksums = [ck.model_dump() for ck in blob.checksums]
        assert [m.type.value for m in blob.access_methods or []] == ["file", "s3"]
        s3_method = (blob.access_methods or [])[1]
        assert s3_method.access_id == f"https-{share.id}"
        link = client.get_access_url(blob.self_uri, s3_method.access_id)
        assert isinstance(link, AccessURL), link
        got = requests.get(link.url, timeout=60)
        got.raise_for_status()
        assert len(got.content) == blob.size
        _check(checksums, got.content)
        assert got.content == _source(data, f)

    unknown = client.get_access_url(f"{built.id}.1", "ftp")
    assert isinstance(unknown, Error)
    assert unknown.status_code == 404
    anonymous = drs_client(uri, port=port).get_object(uri)
    assert isinstance(anonymous, Error)
    assert anonymous.status_code == 401
    outsider = drs_client(uri, port=port, token=_token(c, c.requester))
    hidden = outsider.get_object(f"{uri}.1")
    assert isinstance(hidden, Error)
    assert (hidden.status_code, hidden.msg) == (404, f"no DRS object '{built.id}.1'")
