"""Which API call stands for which service call, so a CLI command names its service once.

A command runs ``backend.run(service, **arguments)``: here that is
``service(db, actor=…, **arguments)``; against a server it is the function registered for
``service`` with :func:`remote_of`, which sends the same arguments over the API and answers
the same view (or raises the same error, from the problem document). A service nobody has
registered says the command does not run against a server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_REMOTE: dict[Callable[..., Any], Callable[..., Any]] = {}
_MODULES = ("steward.remote.admin", "steward.remote.operations", "steward.remote.crawls")
"""Where the registrations are (imported on first use: most commands run locally)."""


def remote_of(service: Callable[..., Any]) -> Callable[[F], F]:
    """Register the decorated function as ``service`` done through a server's API."""

    def register(fn: F) -> F:
        _REMOTE[service] = fn
        return fn

    return register


def remote_for(service: Callable[..., Any]) -> Callable[..., Any] | None:
    for module in _MODULES:
        importlib.import_module(module)
    return _REMOTE.get(service)
