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
SYSTEM = "steward-system"
"""Steward itself, recording what its own effects did (a webhook answered, a mail went out).
Not a role anyone can be given: it is never in a membership, so no person can issue the
commands it alone may issue."""
