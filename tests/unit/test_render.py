"""Small pieces of terminal output shared by the ``show`` commands."""

from __future__ import annotations

from steward.cli.render import state_for


def test_a_state_shows_how_long_it_has_lasted() -> None:
    assert state_for("submitted", 3 * 86400 + 4 * 3600) == "submitted for 3d 4h"


def test_a_final_state_shows_alone() -> None:
    assert state_for("revoked", None) == "revoked"
