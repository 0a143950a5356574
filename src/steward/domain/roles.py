"""Roles a user can hold in a project, and who counts as coordination staff."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    STEWARD = "steward"
    REVIEWER = "reviewer"
    REQUESTER = "requester"
    ANALYST = "analyst"
    VIEWER = "viewer"


ALL_ROLES = frozenset(r.value for r in Role)
STAFF = frozenset({Role.ADMIN.value, Role.STEWARD.value})
