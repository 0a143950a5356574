"""An S3 bucket (or a prefix in one) as a :class:`~steward.adapters.storage.Store`, on OpenDAL.

OpenDAL moves the bytes: ranged and streaming reads, multipart writes with concurrent parts,
server-side copy, delete and presigned links. Two things it cannot give are done with small
signed requests (:mod:`steward.adapters.s3api`): ``stat`` and ``list`` read the storage class
(OpenDAL's metadata has none, and a Glacier object cannot be read until restored) and user
metadata; interrupted multipart uploads are aborted, because OpenDAL's Python writer commits
on close and has no abort: on an exception the writer is dropped unclosed and the pending
upload is aborted here, so no half object ever appears.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import secrets
import urllib.error
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import timedelta
from types import TracebackType
from typing import BinaryIO, cast

import opendal
import opendal.exceptions as odx
from opendal.file import File
from opendal.layers import RetryLayer

from steward.adapters import s3api
from steward.adapters.s3config import S3Config
from steward.adapters.storage import ObjectInfo, Store, normalize_key
from steward.errors import (
    ConfigurationError,
    Detail,
    ExternalError,
    NotFound,
    StewardError,
    StorageDenied,
    Unavailable,
    ValidationFailed,
)

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's smallest part (except the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
MAX_COPY = 5 << 30  # CopyObject's limit; larger objects are copied by streaming
MAX_LINK_LIFETIME = timedelta(days=7)  # SigV4's limit


def _aborted(resp: s3api.Response) -> bool:
    """An abort that took, or found the upload gone already (another clean-up got there)."""
    return resp.status in (200, 204) or resp.error_code == "NoSuchUpload"


PROBE_PREFIX = ".steward-probe-"
"""Names of check_writable()'s uploads: never a real key, always Steward's to sweep."""

_OPENDAL_ERRORS: tuple[type[Exception], ...] = (
    odx.Error,
    odx.Unexpected,
    odx.Unsupported,
    odx.ConfigInvalid,
    odx.NotFound,
    odx.PermissionDenied,
    odx.IsADirectory,
    odx.NotADirectory,
    odx.AlreadyExists,
    odx.IsSameFile,
    odx.ConditionNotMatch,
    odx.RateLimited,
    odx.RangeNotSatisfied,
    odx.Conflict,
)
_READ_ERRORS: tuple[type[Exception], ...] = (*_OPENDAL_ERRORS, OSError)  # File.read raises OSError
_CODE = re.compile(r'code: "([A-Za-z0-9]+)"')
_STATUS = re.compile(r"status: (\d{3})")
_CREDENTIAL_CODES = {
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "AuthorizationHeaderMalformed",
    "InvalidToken",
    "ExpiredToken",
    "InvalidSignature",
}
_NETWORK_HINTS = (
    ("Connection refused", "connection refused"),
    ("dns error", "the host name does not resolve"),
    ("timed out", "timed out"),
    ("certificate", "TLS certificate problem"),
    ("Connection reset", "connection reset"),
)


def part_size_for(size: int | None, preferred: int) -> int:
    """The part size to use: ``preferred`` (at least 5 MiB), larger when the object would
    otherwise need more than 10,000 parts, rounded up to whole MiB."""
    part = max(preferred, MIN_PART)
    if size is not None and size > part * MAX_PARTS:
        part = math.ceil(size / MAX_PARTS)
    return math.ceil(part / MiB) * MiB


class S3Store(Store):
    is_local = False

    def __init__(
        self,
        bucket: str,
        prefix: str,
        cfg: S3Config,
        *,
        part_size: int = 16 * MiB,
        concurrency: int = 4,
    ) -> None:
        self.bucket, self.prefix, self.cfg = bucket, prefix, cfg
        self.url = f"s3://{bucket}" + (f"/{prefix}" if prefix else "")
        self.part_size = part_size
        self.concurrency = concurrency
        self.list_page_size = 1000
        options = {
            "bucket": bucket,
            "root": f"/{prefix}/" if prefix else "/",
            "endpoint": cfg.resolved_endpoint,
            "region": cfg.region,
            "disable_config_load": "true",
            "disable_ec2_metadata": "true",
        }
        if cfg.access_key_id and cfg.secret_access_key:
            options["access_key_id"] = cfg.access_key_id
            options["secret_access_key"] = cfg.secret_access_key
        else:
            options["skip_signature"] = "true"
        self._options = options
        self._aop: opendal.AsyncOperator | None = None  # for presigning only
        self._op = opendal.Operator("s3", **options).layer(
            RetryLayer(max_times=3, min_delay=0.2, max_delay=5.0, jitter=True)
        )

    # -- naming and errors ------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def _who(self) -> str:
        return f"access key {self.cfg.access_key_id}" if self.cfg.access_key_id else "anonymous"

    def _by_code(self, code: str | None, status: int | None, key: str, action: str) -> StewardError:
        endpoint = self.cfg.display_endpoint
        where = self.join(key)
        if code == "NoSuchBucket":
            return NotFound(f"bucket {self.bucket!r} does not exist at {endpoint}")
        if code in _CREDENTIAL_CODES:
            return ConfigurationError(
                f"the S3 credentials ({self._who}) were refused by {endpoint} ({code}); "
                "check the access key id and secret access key"
            )
        if code in ("NoSuchKey", "NoSuchUpload") or (code is None and status == 404):
            return NotFound(f"{where} does not exist")
        if code == "AccessDenied" or status == 403:
            return StorageDenied(f"{self._who} may not {action} {where} at {endpoint}")
        if code in ("SlowDown", "ServiceUnavailable", "RequestTimeout") or status == 503:
            return Unavailable(f"S3 at {endpoint} is overloaded ({code or status}); retry")
        return ExternalError(f"S3 at {endpoint} failed to {action} {where}: {code or status}")

    def _diagnose(self, status: int, key: str, action: str) -> StewardError:
        """A HEAD answer has no body: ask the bucket why (missing? credentials?)."""
        try:
            resp = s3api.request(
                self.cfg, "GET", self.bucket, query={"list-type": "2", "max-keys": "1"}
            )
        except (urllib.error.URLError, OSError) as exc:
            return self._unreachable(exc)
        if resp.status != 200:
            return self._by_code(resp.error_code, resp.status, key, action)
        return self._by_code(None, status, key, action)

    def _unreachable(self, exc: BaseException) -> ConfigurationError:
        text = str(exc)
        reason = next((nice for hint, nice in _NETWORK_HINTS if hint in text), "no answer")
        return ConfigurationError(f"could not reach S3 at {self.cfg.display_endpoint}: {reason}")

    def _translate(self, exc: Exception, key: str, action: str) -> StewardError:
        text = str(exc)
        code_match, status_match = _CODE.search(text), _STATUS.search(text)
        code = code_match.group(1) if code_match else None
        status = int(status_match.group(1)) if status_match else None
        if code is None and status is None:
            if isinstance(exc, odx.NotFound):
                status = 404
            elif isinstance(exc, odx.PermissionDenied):
                status = 403
            else:
                return self._unreachable(exc)
        if code is None and status in (403, 404):
            return self._diagnose(status, key, action)
        return self._by_code(code, status, key, action)

    def _call_failed(self, failure: s3api.S3CallFailed, key: str, action: str) -> StewardError:
        resp = failure.response
        return self._by_code(resp.error_code, resp.status, key, action)

    # -- reading ----------------------------------------------------------------------------
    def stat(self, key: str) -> ObjectInfo:
        key = normalize_key(key)
        try:
            resp = s3api.head_object(self.cfg, self.bucket, self._full(key))
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        if resp.status != 200:
            raise self._diagnose(resp.status, key, "read")
        h = resp.headers
        storage_class = h.get("x-amz-storage-class")
        return ObjectInfo(
            key=key,
            size=int(h.get("content-length", "0")),
            etag=h["etag"].strip('"') if h.get("etag") else None,
            last_modified=s3api.http_date(h.get("last-modified")),
            storage_class=None if storage_class in (None, "STANDARD") else storage_class,
            metadata={
                k[len("x-amz-meta-") :]: v for k, v in h.items() if k.startswith("x-amz-meta-")
            },
        )

    def exists(self, key: str) -> bool:
        """One HEAD; a missing bucket reads as a missing object here (``stat`` tells which)."""
        key = normalize_key(key)
        try:
            resp = s3api.head_object(self.cfg, self.bucket, self._full(key))
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        if resp.status == 404:
            return False
        if resp.status != 200:
            raise self._diagnose(resp.status, key, "read")
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = normalize_key(prefix, field="prefix", allow_empty=True)
        base = f"{self.prefix}/" if self.prefix else ""
        wanted = base + (f"{prefix}/" if prefix else "")
        try:
            for obj in s3api.list_objects(
                self.cfg, self.bucket, wanted, page_size=self.list_page_size
            ):
                if obj.key.endswith("/") or not obj.key.startswith(base):
                    continue  # folder markers made by consoles
                yield ObjectInfo(
                    key=obj.key[len(base) :],
                    size=obj.size,
                    etag=obj.etag,
                    last_modified=obj.last_modified,
                    storage_class=None
                    if obj.storage_class in (None, "STANDARD")
                    else obj.storage_class,
                )
        except s3api.S3CallFailed as failure:
            raise self._call_failed(failure, prefix, "list") from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        key = normalize_key(key)
        if length == 0:
            return b""
        try:
            try:
                if length is None:
                    return bytes(
                        self._op.read(key, offset=offset) if offset else self._op.read(key)
                    )
                return bytes(self._op.read(key, offset=offset, size=length))
            except odx.Unexpected as exc:
                if "too little data" not in str(exc):
                    raise
                # The range runs past the end: S3 returned the tail, OpenDAL wanted more.
                return bytes(self._op.read(key, offset=offset))
        except odx.RangeNotSatisfied:
            return b""
        except _OPENDAL_ERRORS as exc:
            raise self._translate(exc, key, "read") from None

    def open_reader(self, key: str, chunk_size: int = 8 << 20) -> AbstractContextManager[BinaryIO]:
        key = normalize_key(key)
        try:
            file = self._op.open(key, "rb", chunk=chunk_size)
        except _OPENDAL_ERRORS as exc:
            raise self._translate(exc, key, "read") from None
        return cast(AbstractContextManager[BinaryIO], _S3Reader(self, key, file))

    # -- writing ----------------------------------------------------------------------------
    def open_writer(
        self,
        key: str,
        *,
        size_hint: int | None = None,
        metadata: Mapping[str, str] | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> AbstractContextManager[_S3Writer]:
        key = normalize_key(key)
        part = part_size_for(size_hint, part_size or self.part_size)
        return _S3Writer(self, key, part, concurrency or self.concurrency, metadata)

    def write(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> None:
        if len(data) <= self.part_size:
            key = normalize_key(key)
            try:
                self._op.write(key, bytes(data), user_metadata=dict(metadata or {}))
            except _OPENDAL_ERRORS as exc:
                raise self._translate(exc, key, "write") from None
            return
        super().write(key, data, metadata=metadata)

    def copy(self, src_key: str, dst_key: str) -> None:
        src_key, dst_key = normalize_key(src_key), normalize_key(dst_key)
        info = self.stat(src_key)
        if info.size > MAX_COPY:
            with (
                self.open_reader(src_key) as r,
                self.open_writer(dst_key, size_hint=info.size) as w,
            ):
                while chunk := r.read(self.part_size):
                    w.write(chunk)
            return
        try:
            self._op.copy(src_key, dst_key)
        except _OPENDAL_ERRORS as exc:
            raise self._translate(exc, dst_key, "copy to") from None

    def delete(self, key: str) -> None:
        key = normalize_key(key)
        try:
            self._op.delete(key)
        except _OPENDAL_ERRORS as exc:
            raise self._translate(exc, key, "delete") from None

    def presign_get(self, key: str, expires: timedelta) -> str:
        key = normalize_key(key)
        if not timedelta(seconds=1) <= expires <= MAX_LINK_LIFETIME:
            raise ValidationFailed(
                "a link must live between one second and seven days",
                [Detail("out of range", field="expires", value=str(expires), accepted="1s–7d")],
            )
        seconds = int(expires.total_seconds())
        if self._aop is None:
            self._aop = opendal.AsyncOperator("s3", **self._options)
        aop = self._aop

        async def sign() -> str:
            req = await aop.presign_read(key, seconds)
            return req.url

        try:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(sign())
            with ThreadPoolExecutor(1) as pool:  # called from async code: sign elsewhere
                return pool.submit(asyncio.run, sign()).result()
        except _OPENDAL_ERRORS as exc:
            raise self._translate(exc, key, "share") from None

    def check_writable(self) -> None:
        try:
            resp = s3api.request(
                self.cfg, "GET", self.bucket, query={"list-type": "2", "max-keys": "1"}
            )
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        if resp.status != 200:
            raise self._by_code(resp.error_code, resp.status, "", "list")
        # A multipart upload begun and aborted proves the right to write (PutObject covers it)
        # and, if we are killed in between, leaves no object behind: only an unfinished upload,
        # invisible to readers, which abort_incomplete() sweeps.
        probe = self._full(f"{PROBE_PREFIX}{secrets.token_hex(6)}")
        try:
            upload_id = s3api.create_upload(self.cfg, self.bucket, probe)
            done = s3api.abort_upload(self.cfg, self.bucket, probe, upload_id)
        except s3api.S3CallFailed as failure:
            raise self._call_failed(failure, "", "write to") from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        if not _aborted(done):
            # Interrupted uploads could never be cleaned up (and are billed): say so now.
            raise self._by_code(done.error_code, done.status, "", "abort uploads at")

    def abort_incomplete(self, keys: set[str] | None = None) -> int:
        base = f"{self.prefix}/" if self.prefix else ""
        wanted = {self._full(normalize_key(k)) for k in keys} if keys is not None else None
        removed = 0
        try:
            for upload in list(s3api.list_uploads(self.cfg, self.bucket, base)):
                probe = upload.key[len(base) :].startswith(PROBE_PREFIX)
                if wanted is None or upload.key in wanted or probe:
                    done = s3api.abort_upload(self.cfg, self.bucket, upload.key, upload.upload_id)
                    if not _aborted(done):
                        raise s3api.S3CallFailed(done)
                    removed += 1
        except s3api.S3CallFailed as failure:
            raise self._call_failed(failure, "", "clean up") from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        return removed


class _S3Reader(io.RawIOBase):
    """OpenDAL's reader with errors translated; ``read(n)`` goes straight to OpenDAL."""

    def __init__(self, store: S3Store, key: str, file: File) -> None:
        super().__init__()
        self._store, self._key, self._file = store, key, file

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        try:
            return bytes(self._file.read(None if size is None or size < 0 else size))
        except _READ_ERRORS as exc:
            raise self._store._translate(exc, self._key, "read") from None

    def readinto(self, buffer: bytearray | memoryview, /) -> int:  # type: ignore[override]
        try:
            return int(self._file.readinto(buffer))
        except _READ_ERRORS as exc:
            raise self._store._translate(exc, self._key, "read") from None

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class _S3Writer:
    """Multipart upload with concurrent parts; committed on clean exit, aborted otherwise."""

    def __init__(
        self,
        store: S3Store,
        key: str,
        part_size: int,
        concurrency: int,
        metadata: Mapping[str, str] | None,
    ) -> None:
        self.store, self.key, self.part_size = store, key, part_size
        self.concurrency = max(1, concurrency)
        self.metadata = dict(metadata or {})
        self._file: File | None = None

    def __enter__(self) -> _S3Writer:
        try:
            self._file = self.store._op.open(
                self.key,
                "wb",
                chunk=self.part_size,
                concurrent=self.concurrency,
                user_metadata=self.metadata,
            )
        except _OPENDAL_ERRORS as exc:
            raise self.store._translate(exc, self.key, "write") from None
        return self

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        assert self._file is not None, "write outside the with block"
        try:
            self._file.write(data if isinstance(data, bytes) else bytes(data))
        except _OPENDAL_ERRORS as exc:
            raise self.store._translate(exc, self.key, "write") from None

    def _abort(self) -> None:
        """Drop the unclosed writer (OpenDAL then never completes the upload) and abort it."""
        self._file = None
        full = self.store._full(self.key)
        try:
            for upload in list(s3api.list_uploads(self.store.cfg, self.store.bucket, full)):
                if upload.key == full:
                    s3api.abort_upload(self.store.cfg, self.store.bucket, full, upload.upload_id)
        except (s3api.S3CallFailed, urllib.error.URLError, OSError):
            pass  # best effort: an unfinished upload is invisible; abort_incomplete() retries

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._abort()
            return
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except _OPENDAL_ERRORS as err:
            self._abort()
            raise self.store._translate(err, self.key, "write") from None
