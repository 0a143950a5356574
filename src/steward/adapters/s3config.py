"""How to reach an S3-compatible object store (re-exported from :mod:`steward.config`).

It lives with the settings because the settings build it, and the database layer imports the
settings: keeping it there means nothing below the adapters has to import them.
"""

from __future__ import annotations

from steward.config import S3Config

__all__ = ["S3Config"]
