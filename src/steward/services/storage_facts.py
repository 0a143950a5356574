"""What the manifest checker needs to know of a file, asked of whichever store holds it."""

from __future__ import annotations

import re
import threading

from steward.adapters.storage import Store, open_store
from steward.config import Settings
from steward.errors import NotFound
from steward.packaging.manifest import FileFacts, Stat, local_path

_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


def manifest_stat(settings: Settings) -> Stat:
    """A stat function over local files and S3 objects, one store per bucket, thread-safe."""
    s3 = settings.s3_config()
    stores: dict[str, Store] = {}
    lock = threading.Lock()

    def store_for(root: str) -> Store:
        with lock:
            if root not in stores:
                stores[root] = open_store(root, s3)
            return stores[root]

    def stat(uri: str) -> FileFacts | None:
        if uri.startswith("s3://"):
            bucket, _, key = uri[len("s3://") :].partition("/")
            store = store_for(f"s3://{bucket}")
        else:
            store = store_for("file:///")
            key = str(local_path(uri)).lstrip("/")
        try:
            info = store.stat(key)
        except NotFound:
            return None
        etag = (info.etag or "").strip('"').lower()
        return FileFacts(
            size=info.size,
            storage_class=info.storage_class,
            md5=etag if _PLAIN_MD5.match(etag) else None,
        )

    return stat
