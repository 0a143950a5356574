"""The download script handed out with presigned links.

The seed system's script was a list of bare ``curl URL > file`` lines: no ``--fail``, no retry,
no checksum, so an expired link silently wrote an S3 error page into the data file. The script
made here is plain POSIX ``sh`` (recipients run it on laptops and old HPC clusters alike) that
downloads to ``NAME.part``, resumes, checks size and SHA-256 before renaming, skips what is
already correct, and says plainly when its links have expired.

Everything pasted into the script is single-quoted by :func:`shell_quote`; the template
refuses any value that did not pass through it (see ``_finalize``), so a file name with quotes,
``$`` or backticks cannot become shell code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path

import jinja2

from steward.errors import Detail, ValidationFailed
from steward.outfiles import PRIVATE_SCRIPT, write_output

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_EXPIRED = 3
EXIT_MISSING_TOOL = 4

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_NOT_IN_URL = re.compile(r'[\s"\\]')


@dataclass(frozen=True)
class ScriptEntry:
    """One file the script fetches: where it goes (relative to ``--dest``) and how to check it."""

    path: str
    url: str
    size: int
    sha256: str


class _Sh(str):
    """Text already safe to paste into the script (quoted, a number, or a checked comment)."""

    __slots__ = ()


def shell_quote(value: str) -> str:
    """Single-quote for POSIX sh: inside '…' nothing is special except ' itself."""
    return "'" + value.replace("'", "'\\''") + "'"


def _q(value: str) -> _Sh:
    return _Sh(shell_quote(value))


def _num(value: int) -> _Sh:
    return _Sh(str(int(value)))


def _comment(value: str) -> _Sh:
    # Callers have refused control characters, so a value cannot end the comment line.
    assert not _CONTROL.search(value)
    return _Sh(value)


def _finalize(value: object) -> object:
    """Refuse any template value that has not been made shell-safe."""
    if isinstance(value, _Sh):
        return value
    raise TypeError(f"download script template got an unquoted value: {value!r}")


@cache
def _template() -> jinja2.Template:
    text = (
        resources.files("steward.packaging")
        .joinpath("templates", "download.sh.j2")
        .read_text(encoding="utf-8")
    )
    env = jinja2.Environment(
        autoescape=False,  # shell, not HTML: values are quoted by shell_quote instead
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # "${#var}" is shell; keep Jinja's comment syntax out of its way.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    return env.from_string(text)


def human_size(size: int) -> str:
    """Same rounding as the script's own ``human`` function, so header and output agree."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value = float(size)
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{size} B" if i == 0 else f"{value:.1f} {units[i]}"


def script_file_name(package_name: str) -> str:
    """The name the script is saved under by default, e.g. ``download-P1-fastq.sh``."""
    return f"download-{package_name}.sh"


def _redact_url(url: str) -> str:
    """A presigned URL's query carries the credential and signature: never show it."""
    base, sep, _ = url.partition("?")
    return base + ("?…" if sep else "")


def _check_path(path: object, row: int) -> list[Detail]:
    accepted = "a relative path with '/' between non-empty parts, none of them '.' or '..'"
    if not isinstance(path, str) or not path:
        return [Detail("empty path", field="path", row=row, accepted=accepted)]
    problems: list[Detail] = []
    if _CONTROL.search(path):
        problems.append(
            Detail(
                "path contains a control character (tab, newline…)",
                field="path",
                row=row,
                value=path.encode("unicode_escape").decode("ascii"),
                accepted="printable characters",
            )
        )
    if path.startswith("/"):
        problems.append(
            Detail("absolute path", field="path", row=row, value=path, accepted=accepted)
        )
    else:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            problems.append(
                Detail(
                    "path has an empty, '.' or '..' part",
                    field="path",
                    row=row,
                    value=path,
                    accepted=accepted,
                )
            )
    return problems


def _check_entries(entries: Sequence[ScriptEntry]) -> list[Detail]:
    problems: list[Detail] = []
    if not entries:
        problems.append(Detail("no files: a download script needs at least one", field="entries"))
    seen: dict[str, int] = {}
    for row, entry in enumerate(entries, start=1):
        path_problems = _check_path(entry.path, row)
        problems.extend(path_problems)
        if not path_problems:
            if entry.path in seen:
                problems.append(
                    Detail(
                        f"same path as file {seen[entry.path]}",
                        field="path",
                        row=row,
                        value=entry.path,
                    )
                )
            else:
                seen[entry.path] = row
        url = entry.url
        # The script hands each link to curl in a config file on stdin (``url = "…"``), where
        # a double quote or a backslash would be read as quoting: a real presigned link has
        # neither.
        if not isinstance(url, str) or not _URL_SCHEME.match(url) or _NOT_IN_URL.search(url):
            problems.append(
                Detail(
                    "not a download link",
                    field="url",
                    row=row,
                    value=_redact_url(url) if isinstance(url, str) else repr(url),
                    accepted="an http:// or https:// URL without spaces, quotes or backslashes",
                )
            )
        size = entry.size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.append(
                Detail(
                    "size must be a whole number of bytes",
                    field="size",
                    row=row,
                    value=repr(size),
                    accepted="an integer ≥ 0",
                )
            )
        if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
            problems.append(
                Detail(
                    "not a SHA-256 checksum",
                    field="sha256",
                    row=row,
                    value=str(entry.sha256),
                    accepted="64 hexadecimal digits",
                )
            )
    # A file and a folder of the same name cannot both exist, and "x.part" is where "x" is
    # downloaded to: either clash would make one file overwrite another.
    for path, row in seen.items():
        parts = path.split("/")
        for n in range(1, len(parts)):
            prefix = "/".join(parts[:n])
            if prefix in seen:
                problems.append(
                    Detail(
                        f"file {seen[prefix]} ({prefix}) is a file, but this path needs it to "
                        "be a folder",
                        field="path",
                        row=row,
                        value=path,
                    )
                )
        if path + ".part" in seen:
            problems.append(
                Detail(
                    f"file {seen[path + '.part']} is named like this file's partial download",
                    field="path",
                    row=seen[path + ".part"],
                    value=path + ".part",
                    accepted="names that do not end in .part when the name without it is a file",
                )
            )
    return problems


def _check_text(name: str, value: object, problems: list[Detail]) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.append(Detail("must not be empty", field=name))
    elif _CONTROL.search(value):
        problems.append(
            Detail(
                "contains a control character",
                field=name,
                value=value.encode("unicode_escape").decode("ascii"),
                accepted="printable characters",
            )
        )


def _check_meta(
    *,
    package_name: str,
    package_id: str,
    share_id: str,
    created_at: datetime,
    expires_at: datetime,
    created_by: str,
    recipient: str | None,
) -> list[Detail]:
    problems: list[Detail] = []
    for name, value in (
        ("package_name", package_name),
        ("package_id", package_id),
        ("share_id", share_id),
        ("created_by", created_by),
    ):
        _check_text(name, value, problems)
    if recipient is not None:
        _check_text("recipient", recipient, problems)
    # The package name is the default destination folder: it must be one plain folder name.
    if isinstance(package_name, str) and (
        "/" in package_name or package_name in (".", "..") or package_name.startswith("-")
    ):
        problems.append(
            Detail(
                "package name cannot be used as a folder name",
                field="package_name",
                value=package_name,
                accepted="a name without '/', not '.' or '..', not starting with '-'",
            )
        )
    aware = True
    for name, moment in (("created_at", created_at), ("expires_at", expires_at)):
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            aware = False
            problems.append(
                Detail(
                    "needs a time zone",
                    field=name,
                    value=str(moment),
                    accepted="a timezone-aware datetime (UTC)",
                )
            )
    if aware and expires_at <= created_at:
        problems.append(
            Detail(
                "expires before it was created",
                field="expires_at",
                value=expires_at.isoformat(),
                accepted=f"a time after {created_at.isoformat()}",
            )
        )
    return problems


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_download_script(
    entries: Sequence[ScriptEntry],
    *,
    package_name: str,
    package_id: str,
    share_id: str,
    created_at: datetime,
    expires_at: datetime,
    created_by: str,
    recipient: str | None = None,
    script_name: str | None = None,
) -> str:
    """The script's text; every problem with the input is reported at once (ValidationFailed).

    ``script_name`` only appears in the header's "how to run" lines (default
    :func:`script_file_name`).
    """
    problems = _check_entries(entries)
    problems += _check_meta(
        package_name=package_name,
        package_id=package_id,
        share_id=share_id,
        created_at=created_at,
        expires_at=expires_at,
        created_by=created_by,
        recipient=recipient,
    )
    name = script_name or (script_file_name(package_name) if isinstance(package_name, str) else "")
    if script_name is not None:
        _check_text("script_name", script_name, problems)
    if problems:
        raise ValidationFailed(
            f"cannot write a download script: {len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}",
            problems,
        )
    total = sum(e.size for e in entries)
    file_calls = "\n".join(
        f"    entry {shell_quote(e.path)} {e.size} {e.sha256.lower()} {shell_quote(e.url)}"
        for e in entries
    )
    expires_epoch = int(expires_at.timestamp())  # floor: the script stops no later than S3 does
    return _template().render(
        package_name=_q(package_name),
        package_id=_q(package_id),
        created_by=_q(created_by),
        expires_human=_q(_minute(expires_at)),
        expires_epoch=_num(expires_epoch),
        file_count=_num(len(entries)),
        total_bytes=_num(total),
        total_human=_comment(human_size(total)),
        file_calls=_Sh(file_calls),
        package_name_comment=_comment(package_name),
        package_id_comment=_comment(package_id),
        share_id_comment=_comment(share_id),
        created_by_comment=_comment(created_by),
        created_comment=_comment(_minute(created_at)),
        recipient_comment=_comment(recipient) if recipient else None,
        expires_comment=_comment(_minute(expires_at)),
        script_name_comment=_comment(name),
        default_dest_comment=_comment(package_name),
    )


def write_download_script(
    entries: Sequence[ScriptEntry],
    *,
    path: Path,
    package_name: str,
    package_id: str,
    share_id: str,
    created_at: datetime,
    expires_at: datetime,
    created_by: str,
    recipient: str | None = None,
    overwrite: bool = False,
    parents: bool = False,
    field: str = "path",
) -> Path:
    """Render and save the script, mode 0700 whatever the umask, in one atomic rename.

    Its links work like passwords until they expire, so only its owner may read (and run) it;
    an existing file is kept unless ``overwrite``, and a missing folder is an error unless
    ``parents`` (then created 0700). A half-written script would run and fail confusingly on
    the recipient's machine, so the text goes to a temporary file next to ``path`` first.
    Returns the absolute path.
    """
    text = render_download_script(
        entries,
        package_name=package_name,
        package_id=package_id,
        share_id=share_id,
        created_at=created_at,
        expires_at=expires_at,
        created_by=created_by,
        recipient=recipient,
        script_name=path.name,
    )
    return write_output(
        path,
        text,
        mode=PRIVATE_SCRIPT,
        overwrite=overwrite,
        parents=parents,
        field=field,
    )
