"""Root of the ``steward`` command: global options, error handling and small command groups."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.tree import Tree

from steward import __version__
from steward.cli import backend, helpfmt, render
from steward.cli.state import STATE, reset
from steward.domain import duo
from steward.errors import Detail, StewardError, ValidationFailed
from steward.redact import redact
from steward.services import access, catalog
from steward.services.catalog import TreeNode
from steward.services.kinds import kinds

if TYPE_CHECKING:
    from steward.services.demo_package import DemoPackage

helpfmt.install()
app = typer.Typer(
    name="steward",
    help="Steward: access requests and data packages for a research consortium — one "
    "program, one database, every change an event in one ledger.\n\n"
    "Say who you are with --as USER (or STEWARD_USER). Add --json to any command for "
    "machine-readable output.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

GLOBAL_FLAGS = {"--as": True, "--tz": True, "--json": False, "--server": True, "--token": True}
WORKFLOWS = {k.workflow.name: k.workflow for k in kinds()}
"""Every registered kind's workflow, by name (``workflow show NAME``)."""


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"steward {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    as_user: Annotated[
        str | None,
        typer.Option("--as", help="Act as this user (default: $STEWARD_USER).", envvar=None),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print JSON instead of tables; errors as problem+json."),
    ] = False,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Show times in this IANA zone, e.g. Europe/Helsinki.")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Work against this Steward server (https://…) instead of the database "
            "(default: $STEWARD_SERVER).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="API token for --server (default: $STEWARD_TOKEN, else the one `steward "
            "login` stored). Prefer those: a token on the command line is seen by others.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    STATE.actor_flag, STATE.json, STATE.tz_name = as_user, json_out, tz
    STATE.server_flag, STATE.token_flag = server, token
    if tz is not None:
        _ = STATE.tz  # fail early on an unknown (or empty) zone


# ---- setup ---------------------------------------------------------------------------------
@app.command()
def init(
    admin: Annotated[
        str | None,
        typer.Option(
            help="Name of the first administrator (default: --as, $STEWARD_USER or $USER)."
        ),
    ] = None,
) -> None:
    """Create or upgrade the database, and the first administrator if there is none."""
    db = STATE.db
    db.migrate()
    who = admin or STATE.actor or os.environ.get("USER") or "admin"
    created = access.bootstrap_admin(db, user_id=who)
    info = {
        "database": STATE.settings.redacted_database_url(),
        "revision": db.current_revision(),
        "admin_created": who if created else None,
    }
    if STATE.json:
        render.emit_json(info)
        return
    STATE.out.print(
        f"Database ready at [bold]{info['database']}[/bold] (schema {info['revision']})."
    )
    if created:
        STATE.out.print(
            f"Created administrator [bold]{who}[/bold]. "
            f"Act as them with --as {who} or STEWARD_USER={who}."
        )


@app.command()
def demo() -> None:
    """Build a demo consortium (~60 requests over 120 days) and print its reports."""
    from rich.progress import Progress

    from steward.cli.reports import print_demo_reports
    from steward.services import demo as demo_service

    with Progress(console=STATE.err, transient=True, disable=STATE.json) as bar:
        task = bar.add_task("building demo requests", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = demo_service.run(STATE.db, actor=STATE.actor, progress=tick)
    package = _demo_package()
    if STATE.json:
        render.emit_json(
            {
                "project": result.project,
                "created": result.created,
                "total": result.total,
                "package": package.package,
                "share": package.share,
                "report": str(package.report),
            }
        )
        return
    STATE.out.print(
        f"Demo project [bold]{result.project}[/bold]: {result.total} requests "
        f"({result.created} new). Act as coord-sam (steward), rev-aino (reviewer) "
        "or ada (requester).\n"
    )
    print_demo_reports(project=result.project)
    p = package.package
    STATE.out.print(
        f"\nData package [bold]{p.name}[/bold] ({p.id}): {p.state}, {p.file_count} files, "
        f"{render.size(p.total_size)} — a BagIt bag with RO-Crate metadata.\n"
        f"  report:  {package.report}\n"
        f"  pushed:  {package.recipient} ({package.share.id}, {package.share.state}, every "
        "object verified)\n"
        f"Try: steward package show {p.id} --as coord-sam\n"
        f"     steward package validate {p.id} --full --as coord-sam",
        highlight=False,
    )


def _demo_package() -> DemoPackage:
    from steward.cli.progress import bar
    from steward.services import demo_package
    from steward.services.package_build import BuildProgress
    from steward.services.shares import PushProgress

    with bar("demo package") as (start, advance):
        return demo_package.run(
            STATE.db,
            STATE.settings,
            build_progress=BuildProgress(start=start, advance=advance),
            push_progress=PushProgress(start=start, advance=advance),
        )


# ---- users and projects --------------------------------------------------------------------
user_app = typer.Typer(help="People who use Steward.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    user_id: Annotated[str, typer.Argument(help="Login name (lower case).")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    admin: Annotated[bool, typer.Option(help="Make the user an administrator.")] = False,
) -> None:
    """Add a user (administrators only); running it again updates name and e-mail."""
    view = backend.run(
        access.add_user, user_id=user_id, display_name=name, email=email, admin=admin
    )
    if STATE.json:
        render.emit_json(view)
    else:
        STATE.out.print(
            f"User [bold]{view.id}[/bold] ready" + (" (administrator)" if view.is_admin else "")
        )


@user_app.command("list")
def user_list() -> None:
    """List users."""
    users = backend.run(access.list_users)
    from steward.tables import Column, Table

    render.show_table(
        Table(
            "users",
            [
                Column("id"),
                Column("display_name"),
                Column("email"),
                Column("is_admin"),
                Column("has_password"),
                Column("disabled_at", "time"),
            ],
            [
                (u.id, u.display_name, u.email, u.is_admin, u.has_password, u.disabled_at)
                for u in users
            ],
        )
    )


project_app = typer.Typer(
    help="Projects (consortia, programmes) and their members.", no_args_is_help=True
)
app.add_typer(project_app, name="project")


@project_app.command("create")
def project_create(
    project_id: Annotated[str, typer.Argument(help="Short name, e.g. 1kd.")],
    title: Annotated[str, typer.Option(help="Full title.")] = "",
) -> None:
    """Create a project (administrators only); you become its steward."""
    pid = backend.run(access.create_project, project_id=project_id, title=title)
    if STATE.json:
        render.emit_json({"id": pid})
    else:
        STATE.out.print(f"Project [bold]{pid}[/bold] ready")


@project_app.command("list")
def project_list() -> None:
    """Projects you belong to (all of them for administrators)."""
    from steward.tables import Column, Table

    rows = backend.run(access.list_projects)
    render.show_table(Table("projects", [Column("id"), Column("title")], list(rows)))


@project_app.command("add-member")
def project_add_member(
    project_id: Annotated[str, typer.Argument(help="Project.")],
    user_id: Annotated[str, typer.Argument(help="User to add.")],
    role: Annotated[
        str, typer.Argument(help="admin, steward, reviewer, requester, analyst or viewer.")
    ],
) -> None:
    """Give a user a role in a project (stewards and administrators)."""
    m = backend.run(access.add_member, project_id=project_id, user_id=user_id, role=role)
    if STATE.json:
        render.emit_json(m)
    else:
        STATE.out.print(f"{m.user} in {project_id}: {', '.join(m.roles)}")


@project_app.command("members")
def project_members(project_id: Annotated[str, typer.Argument(help="Project.")]) -> None:
    """List a project's members and their roles."""
    from steward.tables import Column, Table

    members = backend.run(access.list_members, project_id=project_id)
    render.show_table(
        Table(
            f"members of {project_id}",
            [Column("user"), Column("roles", "list")],
            [(m.user, m.roles) for m in members],
        )
    )


# ---- access requirements and the folder tree ---------------------------------------------
req_app = typer.Typer(
    help="Access requirements (controlled or click-wrap) and the folders they govern.",
    no_args_is_help=True,
)
app.add_typer(req_app, name="requirement")


@req_app.command("add")
def requirement_add(
    project: Annotated[str, typer.Argument(help="Project.")],
    name: Annotated[str, typer.Argument(help="Requirement name.")],
    kind: Annotated[str, typer.Option(help="controlled or click-wrap.")] = "controlled",
    description: Annotated[str, typer.Option(help="What a requester must do.")] = "",
    folder: Annotated[
        list[str] | None,
        typer.Option(help="Folder/dataset it governs (repeat for several), e.g. raw/wgs."),
    ] = None,
) -> None:
    """Add (or update) an access requirement and attach it to folders."""
    view = backend.run(
        catalog.add_requirement,
        project=project,
        name=name,
        kind=kind,
        description=description,
        folders=folder or [],
    )
    if STATE.json:
        render.emit_json(view)
    else:
        STATE.out.print(
            f"Requirement [bold]{view.name}[/bold] ({view.kind}) on "
            f"{', '.join(view.folders) or 'no folder yet'}"
        )


@req_app.command("list")
def requirement_list(project: Annotated[str, typer.Argument(help="Project.")]) -> None:
    """List a project's access requirements."""
    from steward.tables import Column, Table

    reqs = backend.run(catalog.list_requirements, project=project)
    render.show_table(
        Table(
            "access requirements",
            [
                Column("id"),
                Column("name"),
                Column("kind"),
                Column("folders", "list"),
                Column("description"),
            ],
            [(r.id, r.name, r.kind, r.folders, r.description) for r in reqs],
        )
    )


@app.command("folder")
def folder_add(
    project: Annotated[str, typer.Argument(help="Project.")],
    path: Annotated[str, typer.Argument(help="Folder path, e.g. raw/wgs/batch-3.")],
    requirement: Annotated[
        str | None,
        typer.Option(help="Access requirement governing it (default: inherited from its parent)."),
    ] = None,
) -> None:
    """Register a folder (dataset) of a project."""
    clean = backend.run(catalog.add_folder, project=project, path=path, requirement=requirement)
    if STATE.json:
        render.emit_json({"project": project, "path": clean, "requirement": requirement})
    else:
        STATE.out.print(f"Folder [bold]{clean}[/bold] registered in {project}")


@app.command("tree")
def tree(project: Annotated[str, typer.Argument(help="Project.")]) -> None:
    """Print the project's folder tree with the access requirement of each folder."""
    root = backend.run(catalog.tree, project=project)
    if STATE.json:
        render.emit_json(root)
        return

    def label(n: TreeNode) -> str:
        if n.requirement is None:
            return f"[bold]{n.name}[/bold]  [dim](open)[/dim]"
        how = "inherited" if n.inherited else n.requirement_kind
        return f"[bold]{n.name}[/bold]  [cyan]{n.requirement}[/cyan] [dim]({how})[/dim]"

    def grow(branch: Tree, node: TreeNode) -> None:
        for child in node.children:
            grow(branch.add(label(child)), child)

    top = Tree(f"[bold]{root.name}[/bold]")
    grow(top, root)
    STATE.out.print(top)


# ---- reference -----------------------------------------------------------------------------
duo_app = typer.Typer(help="Data Use Ontology codes.", no_args_is_help=True)
app.add_typer(duo_app, name="duo")


@duo_app.command("list")
def duo_list() -> None:
    """The DUO codes Steward accepts (by id or shorthand)."""
    from steward.tables import Column, Table

    render.show_table(
        Table(
            "DUO codes",
            [Column("id"), Column("shorthand"), Column("label")],
            [(t.id, t.shorthand, t.label) for t in duo.terms().values()],
        )
    )


workflow_app = typer.Typer(
    help="The state machines behind every tracked thing.", no_args_is_help=True
)
app.add_typer(workflow_app, name="workflow")


@workflow_app.command("show")
def workflow_show(
    name: Annotated[str, typer.Argument(help="Workflow name: " + ", ".join(WORKFLOWS))],
    mermaid: Annotated[bool, typer.Option(help="Print only the Mermaid diagram.")] = False,
) -> None:
    """Print a workflow's states, transitions (who may do what) and a Mermaid diagram."""
    from steward.services import workflows

    wf = workflows.find(name)
    if mermaid:
        typer.echo(wf.mermaid())
        return
    from steward.tables import Column, Table

    if STATE.json:
        render.emit_json(workflows.info(wf).model_dump(mode="json", by_alias=True))
        return
    render.show_table(
        Table(
            f"{wf.name}: states",
            [Column("state"), Column("final"), Column("sla", "duration"), Column("meaning")],
            [
                (
                    s.name,
                    "yes" if s.terminal else "",
                    s.sla.total_seconds() if s.sla else None,
                    s.description,
                )
                for s in wf.states
            ],
        )
    )
    render.show_table(
        Table(
            f"{wf.name}: commands",
            [
                Column("command"),
                Column("from"),
                Column("to"),
                Column("event"),
                Column("roles"),
                Column("guards"),
            ],
            [
                (
                    t.command,
                    ", ".join(t.sources) or "(new)",
                    t.target or "(same)",
                    t.event,
                    ", ".join(sorted(t.roles)),
                    ", ".join(t.guards),
                )
                for t in (wf.create, *wf.transitions)
            ],
        )
    )
    STATE.out.print("\n```mermaid\n" + wf.mermaid() + "\n```", markup=False, highlight=False)


def _register_groups() -> None:
    from steward.cli import accounts, generic, jobs, packages, reports, requests, server, shares
    from steward.services.kinds import kinds

    app.add_typer(requests.app, name="request")
    app.add_typer(reports.app, name="report")
    app.add_typer(packages.app, name="package")
    app.add_typer(shares.app, name="share")
    from steward.cli import crawl, datasets

    app.add_typer(crawl.app, name="crawl")
    app.add_typer(datasets.app, name="dataset")
    jobs.register(app)
    from steward.cli import audit, sites

    sites.register(app)
    audit.register(app)
    server.register(app)
    accounts.register(user_app)
    # Every other tracked kind gets its commands from the registry.
    taken = {g.name for g in app.registered_groups}
    for kind in kinds():
        if kind.id_field not in taken:
            app.add_typer(generic.group_for(kind), name=kind.id_field)


_register_groups()
helpfmt.reflow(app)


def hoist_globals(argv: list[str]) -> list[str]:
    """Let global flags (--as, --tz, --json) appear anywhere, as people type them."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_FLAGS:
            front.append(arg)
            if GLOBAL_FLAGS[name] and "=" not in arg and i + 1 < len(argv):
                front.append(argv[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _group_missing_command(args: list[str]) -> ValidationFailed | None:
    """With ``--json``, a group named without a command: the problem, instead of Typer's help
    screen (which Rich would print on stdout before any error could be raised)."""
    from typer.core import TyperGroup

    command = typer.main.get_command(app)
    path = ["steward"]
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_FLAGS:
            i += 2 if GLOBAL_FLAGS[name] and "=" not in arg else 1
            continue
        if arg in ("-h", "--help", "--version") or not isinstance(command, TyperGroup):
            return None
        sub = command.get_command(typer.Context(command), arg)
        if sub is None:
            return None  # an unknown command: the parser says so
        command, i = sub, i + 1
        path.append(arg)
    if not isinstance(command, TyperGroup) or command.invoke_without_command:
        return None  # not a group, or one that runs on its own (`steward crawl`)
    names = ", ".join(sorted(command.list_commands(typer.Context(command))))
    return ValidationFailed(
        f"{' '.join(path)}: a command is missing",
        [Detail("missing command", field="command", accepted=names)],
    )


def _usage_problem(exc: typer.TyperException) -> ValidationFailed:
    """A parser error as the same problem document every other error is."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "steward"
    param = getattr(exc, "param", None)
    field = None
    if param is not None:
        field = param.opts[0] if getattr(param, "opts", None) else param.name
    return ValidationFailed(
        f"{where}: {exc.format_message()}", [Detail("usage error", field=field)]
    )


def _internal_error(exc: BaseException) -> int:
    """An error Steward did not foresee: a short message, the traceback in a private log file.

    People never see a Python traceback; whoever reports the bug attaches the log.
    """
    import traceback

    from steward.timeutil import utcnow

    log_note = ""
    try:
        folder = STATE.settings.home / "logs"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"error-{utcnow():%Y%m%dT%H%M%S%f}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as log:
            log.write(redact("".join(traceback.format_exception(exc))))
        log_note = f"; details in {path}"
    except Exception:  # the log is a courtesy; the message still goes out
        log_note = ""
    problem = StewardError(
        f"internal error ({type(exc).__name__}): {redact(str(exc))[:300]}{log_note} — "
        "this is a bug in Steward; please report it with the command you ran",
    )
    render.show_error(problem)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs a command and turns every error into a message and an exit code."""
    reset()
    args = hoist_globals(list(sys.argv[1:] if argv is None else argv))
    # Known before parsing, so a usage error in --json mode is JSON too.
    STATE.json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    try:
        missing = _group_missing_command(args) if STATE.json else None
        if missing is not None:
            render.show_error(missing)
            return 2
        rv = app(args=args, prog_name="steward", standalone_mode=False)
        # Without standalone mode a raised typer.Exit comes back as its exit code.
        return rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:
        # Typer's own parser errors (unknown option, missing argument, bad value): usage, exit 2.
        if STATE.json:
            render.show_error(_usage_problem(exc))
        else:
            show = getattr(exc, "show", None)
            if show is not None:
                show()
            else:
                STATE.err.print(f"error: {exc.format_message()}", markup=False)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        render.show_error(StewardError("interrupted; nothing half-written was kept"))
        return 130
    except BrokenPipeError:
        # The reader went away (`steward … | head`): what it wanted was written; that is success.
        _silence_stdout()
        return 0
    except StewardError as exc:
        render.show_error(exc)
        return exc.exit_code
    except Exception as exc:  # last line of defence: never a traceback
        return _internal_error(exc)
    finally:
        STATE.close()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run() -> None:
    sys.exit(main())
