"""The few S3 calls OpenDAL does not offer, as AWS Signature V4 requests on the standard library.

OpenDAL moves the bytes; it cannot create a bucket and its metadata has no storage class (so a
file restored from Glacier and one still frozen look the same). Those two needs are small
enough that a dependency such as boto3 is not worth it: this module signs a request with
SigV4 (path-style addressing, as OpenDAL uses by default) and reads the XML answer.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import http.client
import ssl
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

from steward.adapters.s3config import S3Config

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Response:
    """An answer; header names are lower case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def error_code(self) -> str | None:
        """The ``<Code>`` of an S3 error document, if the body is one."""
        if not self.body:
            return None
        try:
            root = ET.fromstring(self.body)
        except ET.ParseError:
            return None
        code = root.find("Code")
        if code is None:
            code = root.find(f"{_NS}Code")
        return code.text if code is not None else None


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str | None
    last_modified: datetime | None
    storage_class: str | None


def _uri_encode(text: str, *, keep_slash: bool) -> str:
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _signing_key(secret: str, day: str, region: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), day)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    return _hmac(k, "aws4_request")


def _target(cfg: S3Config, bucket: str, key: str) -> tuple[str, str, str]:
    """(base URL, Host header, canonical URI) for path-style addressing."""
    base = cfg.resolved_endpoint
    parts = urlsplit(base)
    prefix = parts.path.rstrip("/")
    path = f"{prefix}/{bucket}" if bucket else prefix or "/"
    if key:
        path = f"{path}/{key}"
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{parts.netloc}", host, _uri_encode(path, keep_slash=True)


def _canonical_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{_uri_encode(k, keep_slash=False)}={_uri_encode(v, keep_slash=False)}"
        for k, v in sorted(query.items())
    )


def _credentials(cfg: S3Config) -> tuple[str, str]:
    if not cfg.access_key_id or not cfg.secret_access_key:
        raise ValueError("an S3 access key id and secret access key are needed")
    return cfg.access_key_id, cfg.secret_access_key


def sign_headers(
    cfg: S3Config,
    method: str,
    bucket: str,
    key: str = "",
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    now: datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a request signed in the Authorization header."""
    access, secret = _credentials(cfg)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    origin, host, uri = _target(cfg, bucket, key)
    payload = hashlib.sha256(body).hexdigest()
    headers = {k.lower(): v.strip() for k, v in (extra_headers or {}).items()}
    headers.update({"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date})
    signed = ";".join(sorted(headers))
    canonical_headers = "".join(f"{h}:{headers[h]}\n" for h in sorted(headers))
    cq = _canonical_query(query or {})
    canonical = "\n".join([method, uri, cq, canonical_headers, signed, payload])
    scope = f"{day}/{cfg.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signature = hmac.new(
        _signing_key(secret, day, cfg.region), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    url = f"{origin}{uri}" + (f"?{cq}" if cq else "")
    del headers["host"]
    return url, headers


def presign(
    cfg: S3Config,
    method: str,
    bucket: str,
    key: str,
    expires_seconds: int,
    now: datetime | None = None,
) -> str:
    """A query-signed URL, as any S3 client would make (used by tests to craft links)."""
    access, secret = _credentials(cfg)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    origin, host, uri = _target(cfg, bucket, key)
    scope = f"{day}/{cfg.region}/s3/aws4_request"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_seconds),
        "X-Amz-SignedHeaders": "host",
    }
    cq = _canonical_query(query)
    canonical = "\n".join([method, uri, cq, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signature = hmac.new(
        _signing_key(secret, day, cfg.region), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return f"{origin}{uri}?{cq}&X-Amz-Signature={signature}"


_MAX_IDLE = 32
_idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
_idle_lock = threading.Lock()


def close_idle() -> None:
    """Close every kept-alive connection (at exit, and when a server goes away in tests)."""
    with _idle_lock:
        conns = [c for pool in _idle.values() for c in pool]
        _idle.clear()
    for conn in conns:
        conn.close()


atexit.register(close_idle)


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


def _acquire(
    scheme: str, netloc: str, timeout: float, *, fresh: bool = False
) -> http.client.HTTPConnection:
    """A kept-alive connection to reuse, or a new one: a HEAD per object stays cheap over
    TLS. The pool is shared by threads (a per-thread pool would leak sockets when workers
    end)."""
    conn = None
    with _idle_lock:
        spare = _idle.get((scheme, netloc))
        if spare and not fresh:
            conn = spare.pop()
    if conn is None:
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                netloc, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(netloc, timeout=timeout)
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
    return conn


def _release(scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
    with _idle_lock:
        spare = _idle.setdefault((scheme, netloc), [])
        if len(spare) < _MAX_IDLE:
            spare.append(conn)
            return
    conn.close()


def _via_proxy(url: str) -> bool:
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


def request(
    cfg: S3Config,
    method: str,
    bucket: str,
    key: str = "",
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 30.0,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Send one signed request; HTTP errors come back as a Response, network errors raise.

    Without credentials the request goes unsigned (public buckets). Connections are reused
    per thread; when a proxy is configured for the endpoint, urllib goes through it instead.
    """
    if cfg.access_key_id and cfg.secret_access_key:
        url, sent = sign_headers(cfg, method, bucket, key, query, body, extra_headers=headers)
    else:
        origin, _, uri = _target(cfg, bucket, key)
        cq = _canonical_query(query or {})
        url, sent = f"{origin}{uri}" + (f"?{cq}" if cq else ""), dict(headers or {})
    if _via_proxy(url):
        req = urllib.request.Request(url, data=body or None, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(resp.status, _lower(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, _lower(exc.headers.items()), exc.read())
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in (1, 2):
        # the retry takes a new connection: the other idle ones may be just as stale
        conn = _acquire(parts.scheme, parts.netloc, timeout, fresh=attempt == 2)
        try:
            conn.request(method, target, body=body or None, headers=sent)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, ConnectionError):
            # A kept-alive connection the server closed meanwhile: retry once on a fresh one.
            conn.close()
            if attempt == 2:
                raise
            continue
        except OSError:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            _release(parts.scheme, parts.netloc, conn)
        return Response(resp.status, _lower(resp.getheaders()), data)
    raise AssertionError("unreachable")


def create_bucket(cfg: S3Config, bucket: str) -> Response:
    body = b""
    if cfg.region != "us-east-1" and cfg.endpoint is None:
        body = (
            '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<LocationConstraint>{cfg.region}</LocationConstraint></CreateBucketConfiguration>"
        ).encode()
    return request(cfg, "PUT", bucket, body=body)


def _text(node: ET.Element, name: str) -> str | None:
    found = node.find(f"{_NS}{name}")
    if found is None:
        found = node.find(name)
    return found.text if found is not None else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def list_objects(
    cfg: S3Config, bucket: str, prefix: str = "", page_size: int = 1000
) -> Iterator[ListedObject]:
    """ListObjectsV2 over every page. Raises :class:`S3CallFailed` on an error answer."""
    token: str | None = None
    while True:
        query = {"list-type": "2", "max-keys": str(page_size)}
        if prefix:
            query["prefix"] = prefix
        if token:
            query["continuation-token"] = token
        resp = request(cfg, "GET", bucket, query=query)
        if resp.status != 200:
            raise S3CallFailed(resp)
        root = ET.fromstring(resp.body)
        for item in root.iter(f"{_NS}Contents"):
            etag = _text(item, "ETag")
            yield ListedObject(
                key=_text(item, "Key") or "",
                size=int(_text(item, "Size") or 0),
                etag=etag.strip('"') if etag else None,
                last_modified=_parse_time(_text(item, "LastModified")),
                storage_class=_text(item, "StorageClass"),
            )
        token = _text(root, "NextContinuationToken")
        if _text(root, "IsTruncated") != "true" or not token:
            return


def head_object(cfg: S3Config, bucket: str, key: str) -> Response:
    return request(cfg, "HEAD", bucket, key)


@dataclass(frozen=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime | None


def list_uploads(cfg: S3Config, bucket: str, prefix: str = "") -> Iterator[PendingUpload]:
    """Multipart uploads begun and never completed (e.g. after kill -9), every page."""
    key_marker = upload_marker = ""
    while True:
        query = {"uploads": ""}
        if prefix:
            query["prefix"] = prefix
        if key_marker:
            query["key-marker"] = key_marker
            query["upload-id-marker"] = upload_marker
        resp = request(cfg, "GET", bucket, query=query)
        if resp.status != 200:
            raise S3CallFailed(resp)
        root = ET.fromstring(resp.body)
        for item in root.iter(f"{_NS}Upload"):
            yield PendingUpload(
                key=_text(item, "Key") or "",
                upload_id=_text(item, "UploadId") or "",
                initiated=_parse_time(_text(item, "Initiated")),
            )
        if _text(root, "IsTruncated") != "true":
            return
        key_marker = _text(root, "NextKeyMarker") or ""
        upload_marker = _text(root, "NextUploadIdMarker") or ""
        if not key_marker:
            return


def create_upload(cfg: S3Config, bucket: str, key: str) -> str:
    """Begin a multipart upload and return its id (raises :class:`S3CallFailed` if refused)."""
    resp = request(cfg, "POST", bucket, key, query={"uploads": ""})
    if resp.status != 200:
        raise S3CallFailed(resp)
    return _text(ET.fromstring(resp.body), "UploadId") or ""


def abort_upload(cfg: S3Config, bucket: str, key: str, upload_id: str) -> Response:
    return request(cfg, "DELETE", bucket, key, query={"uploadId": upload_id})


def http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    return parsedate_to_datetime(value).astimezone(UTC)


class S3CallFailed(Exception):
    """An error answer; the storage adapter turns it into Steward's exception tree."""

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"S3 answered {response.status} {response.error_code or ''}".strip())
