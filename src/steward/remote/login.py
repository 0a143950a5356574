"""Tokens ``steward login`` keeps for servers: one private file in the user's config folder.

``$XDG_CONFIG_HOME/steward/credentials.json`` (default ``~/.config/…``), mode 0600 in a 0700
folder, written to a temporary file and renamed, so a crash never leaves half a file and no
other user can read a token at any moment.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from steward.errors import ConfigurationError, Detail


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "steward" / "credentials.json"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the stored tokens in {path}: {type(exc).__name__}; remove the file "
            "and run `steward login` again",
            [Detail("unreadable", field="credentials", value=str(path))],
        ) from None
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        return {}
    return {str(k): str(v) for k, v in servers.items()}


def stored_token(server: str) -> str | None:
    return _read(credentials_path()).get(server.rstrip("/"))


def store_token(server: str, token: str) -> Path:
    path = credentials_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    servers = _read(path)
    servers[server.rstrip("/")] = token
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"servers": servers}, out, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def forget_token(server: str) -> bool:
    path = credentials_path()
    servers = _read(path)
    if servers.pop(server.rstrip("/"), None) is None:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"servers": servers}, out, indent=2)
    os.replace(tmp, path)
    return True
