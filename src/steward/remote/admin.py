"""People, projects, the catalogue, sites, tokens and sessions through a server's API: each function
stands for the service function it is registered for (same arguments less the database and
actor, same answer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from steward.remote.calls import remote_of
from steward.remote.client import Client
from steward.services import access, accounts, catalog, sessions, sites, tokens
from steward.services.access import MemberView, ProjectSummary, ProjectView, UserView
from steward.services.catalog import RequirementView, TreeNode
from steward.services.sessions import SessionView
from steward.services.sites import MembershipChange, SiteDetail, SiteView
from steward.services.tokens import NewToken, TokenView

V1 = "/api/v1"


def _seg(value: str) -> str:
    """One path segment: whatever the user typed cannot step into another path."""
    return quote(value, safe="")


# ---- users and accounts -------------------------------------------------------------------
@remote_of(access.add_user)
def add_user(
    client: Client, *, user_id: str, display_name: str = "", email: str = "", admin: bool = False
) -> UserView:
    body = {"id": user_id, "display_name": display_name, "email": email, "admin": admin}
    return UserView.model_validate(client.call("POST", f"{V1}/users", body=body))


@remote_of(access.list_users)
def list_users(client: Client) -> list[UserView]:
    return [UserView.model_validate(u) for u in client.call("GET", f"{V1}/users")]


@remote_of(accounts.disable)
def disable(client: Client, *, user_id: str) -> UserView:
    return UserView.model_validate(client.call("POST", f"{V1}/users/{_seg(user_id)}:disable"))


@remote_of(accounts.enable)
def enable(client: Client, *, user_id: str) -> UserView:
    return UserView.model_validate(client.call("POST", f"{V1}/users/{_seg(user_id)}:enable"))


def set_password(
    client: Client, *, user_id: str, password: str, current: str | None = None
) -> UserView:
    """Over the API changing your own password takes the current one too."""
    body = {"password": password, "current_password": current}
    found = client.call("PUT", f"{V1}/users/{_seg(user_id)}/password", body=body)
    return UserView.model_validate(found)


def whoami(client: Client) -> dict[str, Any]:
    """Who the token stands for (``GET /api/v1/session``)."""
    found: dict[str, Any] = client.call("GET", f"{V1}/session")
    return found


# ---- projects and members -----------------------------------------------------------------
@remote_of(access.create_project)
def create_project(client: Client, *, project_id: str, title: str = "") -> str:
    body = {"id": project_id, "title": title}
    return ProjectView.model_validate(client.call("POST", f"{V1}/projects", body=body)).id


@remote_of(access.list_projects)
def list_projects(client: Client) -> list[tuple[str, str]]:
    found = [ProjectSummary.model_validate(p) for p in client.call("GET", f"{V1}/projects")]
    return [(p.id, p.title) for p in found]


@remote_of(access.add_member)
def add_member(client: Client, *, project_id: str, user_id: str, role: str) -> MemberView:
    path = f"{V1}/projects/{_seg(project_id)}/members/{_seg(user_id)}"
    return MemberView.model_validate(client.call("PUT", path, body={"role": role}))


@remote_of(access.list_members)
def list_members(client: Client, *, project_id: str) -> list[MemberView]:
    found = client.call("GET", f"{V1}/projects/{_seg(project_id)}")
    return ProjectView.model_validate(found).members


# ---- access requirements and folders ------------------------------------------------------
@remote_of(catalog.add_requirement)
def add_requirement(
    client: Client,
    *,
    project: str,
    name: str,
    kind: str = "controlled",
    description: str = "",
    folders: list[str] | None = None,
) -> RequirementView:
    body = {"name": name, "kind": kind, "description": description, "folders": folders or []}
    found = client.call("POST", f"{V1}/projects/{_seg(project)}/requirements", body=body)
    return RequirementView.model_validate(found)


@remote_of(catalog.list_requirements)
def list_requirements(client: Client, *, project: str) -> list[RequirementView]:
    found = client.call("GET", f"{V1}/projects/{_seg(project)}/requirements")
    return [RequirementView.model_validate(r) for r in found]


@remote_of(catalog.add_folder)
def add_folder(client: Client, *, project: str, path: str, requirement: str | None = None) -> str:
    body = {"path": path, "requirement": requirement}
    found = client.call("POST", f"{V1}/projects/{_seg(project)}/tree", body=body)
    return str(found["path"])


@remote_of(catalog.tree)
def tree(client: Client, *, project: str) -> TreeNode:
    return TreeNode.model_validate(client.call("GET", f"{V1}/projects/{_seg(project)}/tree"))


# ---- sites ----------------------------------------------------------------------------------
@remote_of(sites.add_site)
def add_site(client: Client, *, site_id: str, name: str, description: str = "") -> SiteView:
    body = {"id": site_id, "name": name, "description": description}
    return SiteView.model_validate(client.call("POST", f"{V1}/sites", body=body))


@remote_of(sites.list_sites)
def list_sites(client: Client) -> list[SiteView]:
    return [SiteView.model_validate(s) for s in client.call("GET", f"{V1}/sites")["items"]]


@remote_of(sites.show_site)
def show_site(client: Client, *, site_id: str) -> SiteDetail:
    return SiteDetail.model_validate(client.call("GET", f"{V1}/sites/{_seg(site_id)}"))


@remote_of(sites.add_member)
def add_site_member(client: Client, *, site_id: str, user_id: str) -> MembershipChange:
    path = f"{V1}/sites/{_seg(site_id)}/members/{_seg(user_id)}"
    return MembershipChange.model_validate(client.call("PUT", path))


@remote_of(sites.remove_member)
def remove_site_member(client: Client, *, site_id: str, user_id: str) -> MembershipChange:
    path = f"{V1}/sites/{_seg(site_id)}/members/{_seg(user_id)}"
    return MembershipChange.model_validate(client.call("DELETE", path))


# ---- tokens ---------------------------------------------------------------------------------
@remote_of(tokens.create)
def create_token(
    client: Client, *, scope: str, expires_in: timedelta, name: str = "", user: str | None = None
) -> NewToken:
    body = {"scope": scope, "expires": f"{round(expires_in.total_seconds())}s", "name": name,
            "user": user}  # fmt: skip
    return NewToken.model_validate(client.call("POST", f"{V1}/tokens", body=body))


@remote_of(tokens.list_tokens)
def list_tokens(client: Client, *, everyone: bool = False) -> list[TokenView]:
    params = [("all", "true")] if everyone else []
    return [TokenView.model_validate(t) for t in client.call("GET", f"{V1}/tokens", params=params)]


@remote_of(tokens.revoke)
def revoke_token(client: Client, *, token_id: str) -> TokenView:
    return TokenView.model_validate(client.call("POST", f"{V1}/tokens/{_seg(token_id)}:revoke"))


# ---- browser sessions -----------------------------------------------------------------------
@remote_of(sessions.list_sessions)
def list_sessions(client: Client, *, everyone: bool = False) -> list[SessionView]:
    params = [("all", "true")] if everyone else []
    found = client.call("GET", f"{V1}/sessions", params=params)
    return [SessionView.model_validate(v) for v in found]


@remote_of(sessions.revoke)
def revoke_session(client: Client, *, session_id: str) -> SessionView:
    found = client.call("POST", f"{V1}/sessions/{_seg(session_id)}:revoke")
    return SessionView.model_validate(found)
