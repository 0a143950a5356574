"""How options look in ``--help``.

Typer 0.29's rich help prints a value placeholder for every option, flags included
(``--json <bool>``), which tells people a flag takes a value; and a repeatable option shows a
Python type (``<list[str]>``). Typer offers no per-app hook for this, so the one method that
draws the placeholder is wrapped here, once, when the command tree is built.

Rich help also keeps the line breaks of a docstring's later paragraphs, so text wrapped at 100
columns in the source came out ragged at the terminal's width; :func:`reflow` joins each
paragraph into one line and lets Rich wrap it.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer
from typer.core import TyperOption

_original = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.is_flag or self.count:
        return None  # a flag takes no value: show none
    if self.type_descriptor.is_list:
        inner = self.type_descriptor.annotation
        args = getattr(inner, "__args__", ())
        name = getattr(args[0], "__name__", "str") if args else "str"
        return f"<{name}> (repeatable)"
    shown: str | None = _original(self, ctx)
    return shown


def install() -> None:
    """Draw flags without a value placeholder and repeatable options as such."""
    TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]


def reflow_text(text: str) -> str:
    """One line per paragraph; blank lines between paragraphs and indented lines kept."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    out = []
    for para in paragraphs:
        lines = para.splitlines()
        if any(line.startswith((" ", "-", "*", "\b")) for line in lines[1:]):
            out.append(para)  # a list or a pre-formatted block: leave its lines alone
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def reflow(app: typer.Typer) -> None:
    """Reflow the help of every command and group under ``app``."""
    for command in app.registered_commands:
        if command.help:
            command.help = reflow_text(command.help)
        callback = command.callback
        if callback is not None and callback.__doc__:
            callback.__doc__ = reflow_text(callback.__doc__)
    for group in app.registered_groups:
        sub = group.typer_instance
        if sub is None:
            continue
        if isinstance(sub.info.help, str):
            sub.info.help = reflow_text(sub.info.help)
        reflow(sub)
