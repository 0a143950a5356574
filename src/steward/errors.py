"""One exception tree for every surface.

The CLI, the API and the web each render these in one place (message + exit code, problem+json,
an error page), so every error carries the same fields everywhere: a stable ``code``, a human
``message`` and a list of ``details`` that name the row, field or path at fault.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Detail:
    """One problem, located precisely enough that a person can fix it."""

    message: str
    field: str | None = None
    row: int | None = None
    value: str | None = None
    accepted: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"line {self.row}")
        if self.field:
            where.append(self.field)
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        # What was given *and* what would be accepted: a refusal that names only one of them
        # leaves people guessing which of their values is meant (or what to type instead).
        notes = []
        if self.value is not None and self.value != "" and repr(self.value) not in text:
            shown = self.value if len(self.value) <= 200 else self.value[:200] + "…"
            notes.append(f"given: {shown!r}")
        if self.accepted:
            notes.append(f"accepted: {self.accepted}")
        return f"{text} ({'; '.join(notes)})" if notes else text


@dataclass(eq=False)  # compare and hash by identity, like every other exception
class StewardError(Exception):
    """Base of every error Steward raises on purpose."""

    message: str
    details: list[Detail] = field(default_factory=list)

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    transient: ClassVar[bool] = False
    """True when the same call may well succeed later (a busy database, an overloaded
    store): retries and the worker's backoff look at this, never at message text."""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def as_problem(self) -> dict[str, Any]:
        """RFC 9457 problem document; the CLI's ``--json`` errors use the same shape."""
        return {
            "type": f"https://steward.invalid/problems/{self.code}",
            "title": self.title,
            "status": self.http_status,
            "code": self.code,
            "detail": self.message,
            "errors": [d.as_dict() for d in self.details],
        }


class NotFound(StewardError):
    code = "not-found"
    title = "Not found"
    http_status = 404


@dataclass(eq=False)
class Concealed(NotFound):
    """Refused because the caller may not see the subject at all.

    It reads exactly as :class:`NotFound` (same code, message and details) so that probing ids
    tells a stranger neither who owns a thing nor which project holds it; ``reason`` is for the
    audit log only and never rendered.
    """

    reason: str = ""


class Forbidden(StewardError):
    code = "forbidden"
    title = "Forbidden"
    http_status = 403


class Unauthenticated(StewardError):
    code = "unauthenticated"
    title = "Who are you?"
    http_status = 401
    exit_code = 2


@dataclass(eq=False)
class TooManyAttempts(StewardError):
    """Refused for now: too many failed sign-ins for an account or from an address. The API
    answers 429 with ``Retry-After`` (``retry_after`` seconds)."""

    code = "too-many-attempts"
    title = "Too many attempts"
    http_status = 429

    retry_after: int = 60


class InvalidTransition(StewardError):
    code = "invalid-transition"
    title = "Not allowed in the current state"
    http_status = 409


class Conflict(StewardError):
    code = "conflict"
    title = "Changed by someone else"
    http_status = 409


class ValidationFailed(StewardError):
    code = "validation-failed"
    title = "Invalid input"
    http_status = 422
    exit_code = 2


class WorkflowDefinitionError(StewardError):
    code = "invalid-workflow"
    title = "Invalid workflow definition"
    http_status = 500


class ConfigurationError(StewardError):
    code = "configuration"
    title = "Configuration problem"
    http_status = 500


class DatabaseUnavailable(StewardError):
    code = "database-unavailable"
    title = "Database unavailable"
    http_status = 503
    transient = True


class DatabaseBusy(StewardError):
    """Another process held a lock longer than ``lock_timeout``; nothing is wrong with the data.

    Not a :class:`Conflict`: nobody changed what the command acted on, so the same command
    simply works when run again.
    """

    code = "database-busy"
    title = "Database busy"
    http_status = 503
    transient = True


class ExternalError(StewardError):
    """A system Steward talks to (object storage, a file system, later ticketing and mail)
    failed or refused. Never :class:`Forbidden`: that word is for what a *person* may not do,
    and the audit log records it as their denial; this is about Steward's own access."""

    code = "external"
    title = "Another system failed"
    http_status = 502


class StorageDenied(ExternalError):
    """The store refused Steward's credentials or permissions for this place."""

    code = "storage-denied"
    title = "Storage refused access"


class Unavailable(ExternalError):
    """The other system is overloaded, unreachable or timed out: try again later."""

    code = "unavailable"
    title = "Temporarily unavailable"
    http_status = 503
    transient = True
