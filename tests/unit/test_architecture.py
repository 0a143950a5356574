"""Layers depend downwards only: the domain imports nothing from db, web or network libraries.

A small AST check (fast, no subprocess) that mirrors the import-linter contracts in
``pyproject.toml``; it also follows the ``steward`` modules the domain imports, since a pure
domain that imports an impure helper is not pure.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import steward

SRC = Path(steward.__file__).resolve().parent.parent
DOMAIN = SRC / "steward" / "domain"

FORBIDDEN_IN_DOMAIN = (
    # our own outer layers
    "steward.db",
    "steward.services",
    "steward.cli",
    "steward.api",
    "steward.web",
    "steward.adapters",
    "steward.worker",
    "steward.config",
    # database, interface and network libraries
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg2",
    "typer",
    "click",
    "rich",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "httpx",
    "requests",
    "urllib3",
    "boto3",
    "botocore",
    "opendal",
    "huey",
    "redis",
    "pydantic_settings",
    "socket",
    "ssl",
    "smtplib",
    "http.client",
    "urllib.request",
    "subprocess",
)

LAYERS = ("steward.cli", "steward.services", "steward.db", "steward.domain")
"""Highest first: a layer may import the ones below it, never the ones above."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in it, with relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for each import in ``source``, a module of ``package``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            yield node.lineno, origin
            for alias in node.names:
                yield node.lineno, f"{origin}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if called in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                yield node.lineno, str(first.value)


def is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def source_of(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def domain_closure() -> list[Path]:
    """The domain's modules and every ``steward`` module they import, transitively."""
    todo = sorted(DOMAIN.rglob("*.py"))
    seen: list[Path] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for _, imported in imports(path):
            if is_under(imported, "steward"):
                found = source_of(imported)
                if found is not None and found not in seen:
                    todo.append(found)
    # the packages that hold them run at import time too
    for path in list(seen):
        for parent in path.relative_to(SRC).parents:
            init = SRC / parent / "__init__.py"
            if parent.parts and init.is_file() and init not in seen:
                seen.append(init)
    return sorted(seen)


def forbidden_among(found: Iterable[tuple[int, str]], forbidden: tuple[str, ...]) -> set[str]:
    return {
        f"{line}: {imported}"
        for line, imported in found
        if any(is_under(imported, bad) for bad in forbidden)
    }


def violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(SRC)}:{hit}"
        for path in paths
        for hit in forbidden_among(imports(path), forbidden)
    )


def test_the_domain_is_found() -> None:
    paths = domain_closure()
    names = {module_name(p) for p in paths}
    assert {"steward.domain.workflow", "steward.domain.requests", "steward.domain.duo"} <= names
    assert "steward.errors" in names, "the closure must follow the domain's own imports"


def test_the_domain_imports_nothing_impure() -> None:
    assert violations(domain_closure(), FORBIDDEN_IN_DOMAIN) == []


@pytest.mark.parametrize("upper", LAYERS[:-1])
def test_lower_layers_never_import_upper_ones(upper: str) -> None:
    below = LAYERS[LAYERS.index(upper) + 1 :]
    paths = [
        path
        for layer in below
        for path in sorted(SRC.joinpath(*layer.split(".")).rglob("*.py"))
        if not is_under(module_name(path), upper)
    ]
    assert paths
    assert violations(paths, (upper,)) == []


def test_the_check_catches_every_way_of_importing() -> None:
    probe = """\
import sqlalchemy.orm
from typer import Typer
from ..db import models
from .. import services
from steward.cli.app import main
import importlib
def later():
    import rich
    return importlib.import_module("psycopg")
from . import workflow
import json
from steward.errors import Detail
import sqlalchemy_utils
"""
    found = list(imports_in(probe, "steward.domain"))
    assert (3, "steward.db.models") in found
    assert (4, "steward.services") in found
    assert (10, "steward.domain.workflow") in found
    assert forbidden_among(found, FORBIDDEN_IN_DOMAIN) == {
        "1: sqlalchemy.orm",
        "2: typer",
        "2: typer.Typer",
        "3: steward.db",
        "3: steward.db.models",
        "4: steward.services",
        "5: steward.cli.app",
        "5: steward.cli.app.main",
        "8: rich",
        "9: psycopg",
    }
