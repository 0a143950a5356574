"""The documentation in docs/ cannot fall behind the program.

Every command and option of the CLI, every setting, every workflow state and command, every
report column, DUO code and import column must be documented; the Mermaid diagram must be the
generated one; every example command must parse; the import examples must import; every
relative link must resolve.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from pydantic import SecretStr

from steward.cli.app import GLOBAL_FLAGS, app, hoist_globals
from steward.config import Settings, load_settings
from steward.db.session import Database
from steward.domain.duo import terms
from steward.domain.packages import WORKFLOW as PACKAGE_WORKFLOW
from steward.domain.requests import WORKFLOW
from steward.domain.shares import WORKFLOW as SHARE_WORKFLOW
from steward.domain.workflow import Workflow
from steward.errors import StewardError
from steward.services import access, importer
from steward.services.kinds import Kind, kinds
from steward.services.reports import REPORTS
from steward.services.requests import RequestFilter
from steward.timeutil import zone
from tests.conftest import CliResult

DOCS = Path(__file__).resolve().parents[2] / "docs"
OWN_PAGES = (
    "index.md",
    "concepts.md",
    "access-requests.md",
    "packages.md",
    "cli.md",
    "configuration.md",
    "jobs.md",
    "api.md",
    "datasets.md",
)
Cli = Callable[..., CliResult]


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def blocks(text: str, lang: str) -> list[str]:
    """Bodies of the fenced code blocks tagged ``lang``."""
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```$", text, flags=re.M | re.S)


def sections(text: str) -> dict[str, str]:
    """Heading line → text up to the next heading (fenced code is not a heading)."""
    out: dict[str, str] = {}
    current, fenced = "", False
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            out[current] = "\n".join(lines)
            current, lines = line, []
        else:
            lines.append(line)
    out[current] = "\n".join(lines)
    return out


def section(text: str, heading_part: str) -> str:
    found = [body for head, body in sections(text).items() if heading_part in head]
    assert len(found) == 1, f"expected one heading containing {heading_part!r}, got {len(found)}"
    return found[0]


def commands() -> Iterator[tuple[str, Any]]:
    """(path, click command) for every command and group, depth first."""

    def walk(cmd: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, cmd
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "steward")


def leaves() -> list[tuple[str, Any]]:
    return [(p, c) for p, c in commands() if not getattr(c, "commands", None)]


def documented_names(cmd: Any) -> list[str]:
    names = []
    for param in cmd.params:
        if param.param_type_name == "argument":
            names.append(param.name.upper())
        else:
            names += [o for o in (*param.opts, *param.secondary_opts) if o not in ("--help", "-h")]
    return names


# ---- cli.md ---------------------------------------------------------------------------------
def test_command_tree_is_not_trivial() -> None:
    paths = [p for p, _ in commands()]
    assert "steward request assign-reviewer" in paths
    assert "steward report time-in-state" in paths
    assert len(leaves()) >= 30


def test_cli_md_names_every_command() -> None:
    text = page("cli.md")
    missing = [path for path, _ in commands() if path not in text]
    assert missing == []
    headings = [h for h in sections(text) if h.startswith("#")]
    for path, _ in leaves():
        assert any(f"`{path}`" in h for h in headings), f"no section for {path}"


def test_cli_md_documents_every_option_and_argument() -> None:
    text = page("cli.md")
    problems = []
    for path, cmd in leaves():
        body = section(text, f"`{path}`")
        problems += [f"{path}: {n}" for n in documented_names(cmd) if n not in body]
    root = typer.main.get_command(app)
    body = section(text, "Global options")
    problems += [f"steward: {n}" for n in documented_names(root) if n not in body]
    assert problems == []


def test_cli_md_documents_no_command_that_does_not_exist() -> None:
    known = {p for p, _ in commands()}
    headings = re.findall(r"^#+ .*`(steward[^`]*)`", page("cli.md"), flags=re.M)
    assert headings
    assert [h for h in headings if h not in known] == []


def example_lines() -> Iterator[tuple[str, str]]:
    for name in OWN_PAGES:
        for body in blocks(page(name), "sh"):
            for line in body.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:2] == ["uv", "run"]:
                    words = words[2:]
                if words and words[0] == "steward":
                    yield name, shlex.join(words)


def parse_example(words: list[str]) -> None:
    """Parse ``steward …`` as the CLI would, without running it; raises on a usage error."""
    args = hoist_globals(words[1:])
    while args and args[0].split("=", 1)[0] in (*GLOBAL_FLAGS, "--version"):
        flag = args.pop(0)
        if GLOBAL_FLAGS.get(flag.split("=", 1)[0]) and "=" not in flag:
            value = args.pop(0)
            if flag == "--tz":
                zone(value)
    cmd: Any = typer.main.get_command(app)
    name = "steward"
    while getattr(cmd, "commands", None) and args:
        if args[0].startswith("-") and cmd.invoke_without_command:
            break  # a group that runs on its own (`steward crawl --dry-run`): its options
        name = args.pop(0)
        assert name in cmd.commands, f"no command {name!r}"
        cmd = cmd.commands[name]
    if getattr(cmd, "commands", None) and not cmd.invoke_without_command:
        assert name == "steward", f"{name} needs a sub-command"
        return
    cmd.make_context(name, args)


def test_examples_parse() -> None:
    examples = list(example_lines())
    assert {n for n, _ in examples} >= {"index.md", "cli.md", "access-requests.md", "packages.md"}
    assert len(examples) >= 40
    failures = []
    for name, line in examples:
        try:
            parse_example(shlex.split(line))
        except Exception as exc:
            failures.append(f"{name}: {line}: {exc}")
    assert failures == []


def test_example_parser_catches_mistakes() -> None:
    parse_example(["steward", "request", "list", "--as", "ada", "--json"])
    for bad in (
        ["steward", "request", "list", "--bogus"],
        ["steward", "request", "shwo", "req_1"],
        ["steward", "report", "tracking", "--tz", "Mars/Base"],
        ["steward", "request", "approve"],
    ):
        with pytest.raises((typer.TyperException, AssertionError, StewardError)):
            parse_example(bad)


# ---- configuration.md ------------------------------------------------------------------------
def test_configuration_md_lists_every_setting() -> None:
    text = page("configuration.md")
    rows = {
        m.group(1): line
        for line in text.splitlines()
        if (m := re.match(r"^\| `([a-z0-9_]+)` \|", line))
    }
    fields = Settings.model_fields
    assert set(rows) == set(fields)
    for name, info in fields.items():
        assert f"`STEWARD_{name.upper()}`" in rows[name], name
        if info.default is not None:
            assert f"`{info.default}`" in rows[name], name
    assert "STEWARD_CONFIG" in text


def test_configuration_examples_cover_every_setting_and_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = page("configuration.md")
    (toml,) = blocks(text, "toml")
    assert set(tomllib.loads(toml)) == set(Settings.model_fields)
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("STEWARD_"):
            monkeypatch.delenv(name)
    path = tmp_path / "example.toml"
    path.write_text(toml, encoding="utf-8")
    monkeypatch.setenv("STEWARD_CONFIG", str(path))
    loaded = load_settings()
    for key, value in tomllib.loads(toml).items():
        setting = getattr(loaded, key)
        if isinstance(setting, SecretStr):
            setting = setting.get_secret_value()
        assert str(setting) == str(value), key

    (sh,) = blocks(text, "sh")
    # each line is `export NAME=VALUE`, the value quoted as a shell would read it
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in sh.splitlines()
        if line.strip()
    )
    assert set(exported) == {f"STEWARD_{n.upper()}" for n in Settings.model_fields}
    for key, value in exported.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STEWARD_CONFIG")
    from_env = load_settings()
    assert from_env.model_dump() == loaded.model_dump()


# ---- access-requests.md ------------------------------------------------------------------------
def test_mermaid_diagram_is_the_generated_one() -> None:
    (diagram,) = blocks(page("access-requests.md"), "mermaid")
    assert diagram.rstrip("\n") == WORKFLOW.mermaid()


def test_states_commands_and_slas_documented() -> None:
    text = page("access-requests.md")
    for state in WORKFLOW.states:
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{state.name}` |"))
        assert ("| yes |" in row) == state.terminal, state.name
        if state.sla is not None:
            assert f"| {state.sla.days} days |" in row, state.name
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    for t in (WORKFLOW.create, *WORKFLOW.transitions):
        row = next(ln for ln in rows if ln.startswith(f"| `{t.command}`"))
        assert f"`{t.event}`" in row, t.command
        for guard in t.guards:
            assert guard in row, (t.command, guard)
            assert f"**{guard}**" in text, guard


def test_duo_codes_documented() -> None:
    text = page("access-requests.md")
    for term in terms().values():
        assert f"| {term.id} | {term.shorthand} | {term.label} |" in text, term.id


def test_import_columns_documented() -> None:
    body = section(page("access-requests.md"), "Importing request histories")
    for column in importer.COLUMNS:
        assert f"`{column}`" in body, column


@pytest.fixture
def report_columns(tmp_path: Path) -> dict[str, list[str]]:
    db = Database(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.db'}"))
    try:
        db.migrate()
        access.bootstrap_admin(db, user_id="admin")
        return {
            name: [c.name for c in report(db, actor="admin", flt=RequestFilter()).columns]
            for name, report in REPORTS.items()
        }
    finally:
        db.dispose()


def test_report_columns_documented(report_columns: dict[str, list[str]]) -> None:
    text = page("access-requests.md")
    assert set(report_columns) == {"tracking", "changelog", "time-in-state", "sla"}
    for name, columns in report_columns.items():
        body = section(text, f"`steward report {name}`")
        rows = set(re.findall(r"^\| `([a-z_0-9]+)` \|", body, flags=re.M))
        assert rows == set(columns), name
    assert "How total duration is measured" in text


def test_import_examples_import(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = page("access-requests.md")
    (csv_example,) = blocks(text, "csv")
    (jsonl_example,) = blocks(text, "jsonl")
    for line in jsonl_example.splitlines():
        assert isinstance(json.loads(line), dict)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "history.csv").write_text(csv_example, encoding="utf-8")
    (tmp_path / "history.jsonl").write_text(jsonl_example, encoding="utf-8")
    assert cli("init", "--admin", "alice").code == 0
    assert cli("project", "create", "1kd", "--as", "alice").code == 0
    commands_in_docs = [
        shlex.split(line)
        for body in blocks(text, "sh")
        for line in body.splitlines()
        # the imports, and the setup the page shows before them (a reviewer for bob)
        if line.startswith(
            ("steward request import", "steward user add", "steward project add-member")
        )
    ]
    assert sum(words[1:3] == ["request", "import"] for words in commands_in_docs) == 2
    for words in commands_in_docs:
        result = cli(*words[1:])
        assert result.code == 0, result.err
    listed = json.loads(cli("request", "list", "--as", "alice", "--json").out)
    states = {r["external_id"]: r["state"] for r in listed}
    assert states == {"DAR-101": "approved", "DAR-102": "cancelled", "DAR-201": "rejected"}
    tracking = json.loads(cli("report", "tracking", "-f", "json", "--as", "alice").out)
    by_title = {r["title"]: r for r in tracking}
    # First submission 3 Nov 09:15 → approval 12 Nov 16:45: 9 days 7.5 hours.
    assert by_title["PRS of type 2 diabetes"]["total_duration_seconds"] == 9 * 86400 + 7.5 * 3600
    assert by_title["Statin response"]["total_duration_seconds"] is None


# ---- packages.md ------------------------------------------------------------------------------
PACKAGE_PAGE_WORKFLOWS = {"Package states": PACKAGE_WORKFLOW, "Share states": SHARE_WORKFLOW}


@pytest.mark.parametrize("kind", kinds(), ids=lambda k: k.name)
def test_workflow_show_knows_every_registered_kind(cli: Cli, kind: Kind) -> None:
    """The list of workflows comes from the registry: a new kind is shown and documented
    (on its own page, with the generated diagram) without anyone editing a list."""
    result = cli("workflow", "show", kind.workflow.name, "--mermaid")
    assert result.code == 0, result.err
    assert result.out.rstrip("\n") == kind.workflow.mermaid()
    assert kind.workflow.mermaid() in page(kind.docs)
    assert f"steward workflow show {kind.workflow.name}" in page("cli.md")


@pytest.mark.parametrize("heading", sorted(PACKAGE_PAGE_WORKFLOWS))
def test_package_and_share_diagrams_are_the_generated_ones(heading: str) -> None:
    wf = PACKAGE_PAGE_WORKFLOWS[heading]
    (diagram,) = blocks(section(page("packages.md"), heading) + "\n", "mermaid")
    assert diagram.rstrip("\n") == wf.mermaid()
    assert f"workflow show {wf.name} --mermaid" in section(page("packages.md"), heading)


def _state_and_command_rows(wf: Workflow, body: str) -> None:
    lines = body.splitlines()
    states = [ln for ln in lines if re.match(r"^\| `[a-z_]+` \| (yes)? *\|", ln)]
    assert {ln.split("`")[1] for ln in states} == set(wf.state_names), wf.name
    for state in wf.states:
        row = next(ln for ln in states if ln.startswith(f"| `{state.name}` |"))
        assert ("| yes |" in row) == state.terminal, (wf.name, state.name)
        assert state.description in row, (wf.name, state.name)
    rows = [ln for ln in lines if ln.startswith("| `")]
    for t in (wf.create, *wf.transitions):
        row = next(ln for ln in rows if ln.startswith(f"| `{t.command}` |"))
        assert f"`{t.event}`" in row, (wf.name, t.command)
        target = f"`{t.target}`" if t.target else "(same)"
        assert f"| {target} |" in row, (wf.name, t.command)
        for source in t.sources:
            assert (f"`{source}`" if source != "*" else "any state") in row, (wf.name, source)
        roles = {r.strip() for r in row.split("|")[5].split(",")}
        assert roles == set(t.roles), (wf.name, t.command)


@pytest.mark.parametrize("heading", sorted(PACKAGE_PAGE_WORKFLOWS))
def test_package_and_share_states_and_commands_documented(heading: str) -> None:
    _state_and_command_rows(PACKAGE_PAGE_WORKFLOWS[heading], section(page("packages.md"), heading))


def test_packages_md_names_every_package_and_share_command() -> None:
    text = page("packages.md")
    paths = [p for p, _ in leaves() if p.startswith(("steward package ", "steward share "))]
    assert len(paths) >= 17
    assert [p for p in paths if p not in text] == []


def test_packages_md_names_every_manifest_column_alias_and_placeholder() -> None:
    from steward.packaging.manifest import DEFAULT_ALIASES, PLACEHOLDERS, WORKFLOW_RUN_ALIASES
    from steward.packaging.manifest_columns import SAMPLE_COLUMNS, WORKFLOW_COLUMNS

    body = section(page("packages.md"), "## Manifests")
    for column in {*SAMPLE_COLUMNS, *WORKFLOW_COLUMNS}:
        assert f"`{column}`" in body, column
    for column, aliases in DEFAULT_ALIASES.items():
        row = next((ln for ln in body.splitlines() if ln.startswith(f"| `{column}` |")), body)
        for alias in aliases if column != "run_id" else (*aliases, *WORKFLOW_RUN_ALIASES):
            assert re.search(rf"\b{re.escape(alias)}\b", row if column != "run_id" else body), (
                column,
                alias,
            )
    layout = section(page("packages.md"), "## Layout")
    for name in PLACEHOLDERS:
        assert f"{{{name}}}" in layout, name


# ---- every page ----------------------------------------------------------------------------
def slug(heading: str) -> str:
    text = heading.lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(name: str) -> set[str]:
    return {slug(h) for h in sections(page(name)) if h.startswith("#")}


def test_relative_links_resolve() -> None:
    broken = []
    for name in OWN_PAGES:
        text = re.sub(r"^```.*?^```$", "", page(name), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            file = file or name
            if not (DOCS / file).is_file():
                broken.append(f"{name}: {target}")
            elif anchor and file.endswith(".md") and anchor not in anchors(file):
                broken.append(f"{name}: {target} (no such heading)")
    assert broken == []


def test_index_lists_the_five_capabilities_and_every_page() -> None:
    text = page("index.md")
    for capability in (
        "Access requests",
        "Data packages & sharing",
        "Dataset tracker",
        "Run monitor & retention",
        "Federated jobs",
    ):
        assert f"**{capability}**" in text, capability
    for name in (*OWN_PAGES[1:], "performance.md"):
        assert f"]({name})" in text, name


def test_every_error_code_is_in_the_cli_table() -> None:
    """Scripts branch on `code`: every code Steward can answer is documented, with its HTTP
    status and exit code as the error tree defines them."""
    from steward import errors

    text = page("cli.md")
    seen = set()
    todo: list[type[StewardError]] = [StewardError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "code" not in cls.__dict__ or cls is StewardError:
            continue
        seen.add(cls.code)
        row = f"| `{cls.code}` | {cls.http_status} | {cls.exit_code} |"
        assert row in text, (cls.__name__, row)
    assert {"storage-denied", "unavailable", "not-found"} <= seen
    assert errors.Concealed.code == "not-found"


# ---- datasets.md ------------------------------------------------------------------------------
def test_datasets_md_draws_the_workflow_and_names_every_state_and_event() -> None:
    from steward.domain.datasets import WORKFLOW as DATASETS

    text = page("datasets.md")
    (diagram,) = blocks(text, "mermaid")
    assert diagram.rstrip("\n") == DATASETS.mermaid()
    for state in DATASETS.states:
        row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{state.name}` |"))
        assert ("| yes |" in row) == state.terminal, state.name
        assert state.description in row, state.name
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    for t in (DATASETS.create, *DATASETS.transitions):
        if t.command == "record_effect":
            continue
        command = t.command
        for stage in ("external", "incoming", "loading", "analysing", "processed", "published"):
            command = command.replace(f"-{stage}", "-STAGE")
        row = next((ln for ln in rows if ln.startswith(f"| `{command}` |")), "")
        assert f"`{t.event}`" in row, t.command


def test_datasets_md_sources_example_is_a_valid_config() -> None:
    from steward.crawl.config import parse_crawl_config

    (example,) = blocks(section(page("datasets.md"), "## The sources config"), "toml")
    config = parse_crawl_config(tomllib.loads(example))
    assert [s.project for s in config.sources] == ["atlas"] * 3
    assert {s.kind for s in config.sources} == {"folder", "s3", "endpoint"}
    documented = set(
        re.findall(r"^\| `([a-z_]+)`", section(page("datasets.md"), "## The sources config"), re.M)
    )
    from steward.crawl.config_source import ALL_FIELDS

    named = {
        f
        for row in re.findall(r"^\| (`[^|]+`) \|", page("datasets.md"), re.M)
        for f in re.findall(r"`([a-z_]+)`", row)
    }
    assert ALL_FIELDS | {"stages", "accession_mappings"} <= named | documented
