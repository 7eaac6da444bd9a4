"""The API as pure values: each function builds a :class:`Call` (method, path, query, body, how to read the
answer) and does no I/O. ``Client`` and ``AsyncClient`` execute the same calls, one synchronously, one with
``await``; that is the only difference between them.

Paths follow SPEC §4, relative to ``/api/v1``. Path segments are percent-encoded, so a name can never step
outside its resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import error_from_response
from .types import (
    ApiKey,
    Datasource,
    Diagnostic,
    Group,
    LogLine,
    Me,
    Member,
    Page,
    Request,
    Run,
    RunError,
    Schedule,
    TriggerResult,
    Version,
    Workflow,
    Workspace,
)

T = TypeVar("T")

Params = list[tuple[str, str]]

#: The header naming the run behind every trigger answer, ``wf.respond`` answers included.
RUN_ID_HEADER = "loomwork-run-id"
#: Set on the answer when an idempotency key was seen before (the earlier run is returned).
REPLAYED_HEADER = "idempotent-replayed"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP exchange: what to send and how to turn a successful answer into ``T``."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Params = field(default_factory=list)
    json: Any = None  # the JSON body; None sends no body
    extra_timeout: float = 0.0  # added to the client's timeout (a trigger that waits)
    #: Error-status answers that are results, not errors (a workflow's own ``wf.respond(400, ...)``).
    accepts: Callable[[httpx.Response], bool] | None = None

    def result(self, response: httpx.Response) -> T:
        """``T`` for a 1xx-3xx answer; the typed :class:`~loomwork.client.ApiError` for any other."""
        if response.status_code >= 400 and not (self.accepts is not None and self.accepts(response)):
            raise error_from_response(response)
        return self.read(response)


# -- helpers ---------------------------------------------------------------------------------------------------
def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _ws(workspace: str) -> str:
    return f"/workspaces/{_seg(workspace)}"


def _wf(workspace: str, workflow: str) -> str:
    return f"{_ws(workspace)}/workflows/{_seg(workflow)}"


def _params(**values: Any) -> Params:
    """Query parameters without the ``None`` ones; lists repeat the key; booleans are ``true``/``false``."""
    out: Params = []
    for key, value in values.items():
        if value is None:
            continue
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            out.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return out


def _body(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    return response.json()


def _one(parse: Callable[[dict[str, Any]], T]) -> Callable[[httpx.Response], T]:
    return lambda response: parse(response.json())


def _page(parse: Callable[[dict[str, Any]], T]) -> Callable[[httpx.Response], Page[T]]:
    return lambda response: Page.parse(response.json(), parse)


def _list(parse: Callable[[dict[str, Any]], T]) -> Callable[[httpx.Response], list[T]]:
    return lambda response: list(Page.parse(response.json(), parse).items)


def _none(response: httpx.Response) -> None:
    return None


def _as_dict(response: httpx.Response) -> dict[str, Any]:
    body = _json(response)
    return body if isinstance(body, dict) else {"result": body}


def _get(path: str, read: Callable[[httpx.Response], T], params: Params | None = None) -> Call[T]:
    return Call("GET", path, read, params=params or [])


def _send(method: str, path: str, read: Callable[[httpx.Response], T], body: Any = None) -> Call[T]:
    return Call(method, path, read, json=body)


# -- auth and identity -----------------------------------------------------------------------------------------
def login(email: str, password: str) -> Call[dict[str, Any]]:
    """``POST /auth/login`` → ``{"token", "csrf_token", "user"}``."""
    return _send("POST", "/auth/login", _as_dict, {"email": email, "password": password})


def logout() -> Call[None]:
    """End the session the client logged in with (its token stops working)."""
    return _send("POST", "/auth/logout", _none)


def me() -> Call[Me]:
    """Who the client is: user, how it authenticated, workspaces with roles and groups."""
    return _get("/me", _one(Me.parse))


def list_workspaces() -> Call[list[Workspace]]:
    return _get("/workspaces", _list(Workspace.parse))


def create_workspace(slug: str, name: str | None = None) -> Call[Workspace]:
    """Create a workspace; the caller becomes its admin (needs a login session, not an API key)."""
    return _send("POST", "/workspaces", _one(Workspace.parse), _body(slug=slug, name=name))


def get_workspace(workspace: str) -> Call[Workspace]:
    return _get(_ws(workspace), _one(Workspace.parse))


def list_members(workspace: str) -> Call[list[Member]]:
    return _get(f"{_ws(workspace)}/members", _list(Member.parse))


def add_member(
    workspace: str, email: str, role: str, name: str | None = None, password: str | None = None
) -> Call[Member]:
    """Add a member (creating the user if new). Admins only."""
    body = _body(email=email, role=role, name=name, password=password)
    return _send("POST", f"{_ws(workspace)}/members", _one(Member.parse), body)


def update_member(workspace: str, email: str, *, role: str | None = None, name: str | None = None) -> Call[Member]:
    return _send("PATCH", f"{_ws(workspace)}/members/{_seg(email)}", _one(Member.parse), _body(role=role, name=name))


def remove_member(workspace: str, email: str) -> Call[None]:
    return _send("DELETE", f"{_ws(workspace)}/members/{_seg(email)}", _none)


def list_groups(workspace: str) -> Call[list[Group]]:
    return _get(f"{_ws(workspace)}/groups", _list(Group.parse))


def create_group(workspace: str, name: str, members: Iterable[str] = ()) -> Call[Group]:
    return _send("POST", f"{_ws(workspace)}/groups", _one(Group.parse), {"name": name, "members": list(members)})


def set_group(workspace: str, name: str, members: Iterable[str]) -> Call[Group]:
    """Set a group's members (creates the group if new)."""
    return _send("PUT", f"{_ws(workspace)}/groups/{_seg(name)}", _one(Group.parse), {"members": list(members)})


def delete_group(workspace: str, name: str) -> Call[None]:
    return _send("DELETE", f"{_ws(workspace)}/groups/{_seg(name)}", _none)


def list_api_keys(workspace: str) -> Call[list[ApiKey]]:
    return _get(f"{_ws(workspace)}/api-keys", _list(ApiKey.parse))


def create_api_key(workspace: str, name: str, role: str | None = None) -> Call[ApiKey]:
    """Create a key; its secret is in ``.key`` of the answer, and nowhere else ever again."""
    return _send("POST", f"{_ws(workspace)}/api-keys", _one(ApiKey.parse), _body(name=name, role=role))


def delete_api_key(workspace: str, key_id: str) -> Call[None]:
    return _send("DELETE", f"{_ws(workspace)}/api-keys/{_seg(key_id)}", _none)


# -- triggering and runs ---------------------------------------------------------------------------------------
def _trigger_result(response: httpx.Response) -> TriggerResult:
    body: Any = None
    try:
        body = _json(response)
    except ValueError:
        body = response.text
    headers = dict(response.headers)
    header_id = response.headers.get(RUN_ID_HEADER)
    replayed = response.headers.get(REPLAYED_HEADER, "").lower() == "true"
    standard = (
        response.status_code in (200, 202)
        and isinstance(body, dict)
        and "run_id" in body
        and "status" in body
        and (header_id is None or body["run_id"] == header_id)
    )
    if standard:
        assert isinstance(body, dict)
        return TriggerResult(
            run_id=str(body["run_id"]),
            status=str(body["status"]),
            output=body.get("output"),
            error=RunError.parse(body.get("error")),
            http_status=response.status_code,
            body=body,
            headers=headers,
            replayed=replayed,
        )
    return TriggerResult(
        run_id=header_id,
        status="running",
        http_status=response.status_code,
        body=body,
        headers=headers,
        responded=True,
        replayed=replayed,
    )


def trigger(
    workspace: str,
    workflow: str,
    data: Any = None,
    wait: float | None = None,
    idempotency_key: str | None = None,
    test: bool = False,
) -> Call[TriggerResult]:
    """Start a run of the latest deployed version (``test=True``: of the draft) with input ``data``.

    With ``wait`` (seconds) the call returns when the run finishes, answers with ``wf.respond``, or the wait
    expires, whichever is first (SPEC §4.4). A repeated ``idempotency_key`` returns the earlier run.
    """
    body = _body(data=data if data is not None else {}, wait=wait, idempotency_key=idempotency_key)
    if test:
        body["test"] = True
    url = f"{_wf(workspace, workflow)}/runs"
    return Call("POST", url, _trigger_result, json=body, extra_timeout=wait or 0.0, accepts=_from_a_run)


def _from_a_run(response: httpx.Response) -> bool:
    """Answers naming a run come from the run (``wf.respond``); the server's own errors name none."""
    return RUN_ID_HEADER in response.headers


def get_run(workspace: str, run_id: str) -> Call[Run]:
    """A run with its steps and requests."""
    return _get(f"{_ws(workspace)}/runs/{_seg(run_id)}", _one(Run.parse))


def list_runs(
    workspace: str,
    workflow: str | None = None,
    status: str | Iterable[str] | None = None,
    trigger: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    test: bool | None = None,
    q: str | None = None,
) -> Call[Page[Run]]:
    """One page of run history, newest first: the workspace's, or one workflow's.

    ``status`` is one status or several; ``since``/``until`` are RFC 3339 times; ``q`` searches input and
    output. Pass the page's ``next_cursor`` back as ``cursor`` for the next page.
    """
    statuses = [status] if isinstance(status, str) else (list(status) if status is not None else None)
    params = _params(status=statuses, trigger=trigger, since=since, until=until, test=test, q=q)
    params += _params(limit=limit, cursor=cursor)
    path = f"{_wf(workspace, workflow)}/runs" if workflow else f"{_ws(workspace)}/runs"
    return _get(path, _page(Run.parse), params)


def cancel_run(workspace: str, run_id: str) -> Call[Run]:
    """Cancel a running or waiting run; its pending requests become ``cancelled``."""
    return _send("POST", f"{_ws(workspace)}/runs/{_seg(run_id)}/cancel", _one(Run.parse))


def retry_run(workspace: str, run_id: str) -> Call[Run]:
    """Resume a failed run from its failed step (same run id)."""
    return _send("POST", f"{_ws(workspace)}/runs/{_seg(run_id)}/retry", _one(Run.parse))


def get_logs(
    workspace: str, run_id: str, after: int = 0, limit: int = 500, cursor: str | None = None
) -> Call[Page[LogLine]]:
    """Log lines with ``seq > after``, oldest first, ``limit`` at a time; pass ``next_cursor`` back as ``cursor``."""
    params = _params(after=after, limit=limit, cursor=cursor)
    return _get(f"{_ws(workspace)}/runs/{_seg(run_id)}/logs", _page(LogLine.parse), params)


# -- requests --------------------------------------------------------------------------------------------------
def get_requests(
    workspace: str,
    request_name: str | Iterable[str] | None = None,
    status: str | None = "pending",
    workflow: str | None = None,
    all: bool = False,
    limit: int = 10,
    skip: int = 0,
) -> Call[list[Request]]:
    """Requests assigned to the caller (admins: everyone's with ``all=True``), newest first."""
    names = [request_name] if isinstance(request_name, str) else (list(request_name) if request_name else None)
    params = _params(request_name=names, status=status, workflow=workflow, all=True if all else None)
    params += _params(limit=limit, skip=skip)
    return _get(f"{_ws(workspace)}/requests", _list(Request.parse), params)


def get_request(workspace: str, request_id: str) -> Call[Request]:
    return _get(f"{_ws(workspace)}/requests/{_seg(request_id)}", _one(Request.parse))


def resolve_request(
    workspace: str, request_id: str, resolution: str, metadata: Mapping[str, Any] | None = None
) -> Call[Request]:
    """Resolve a request with one of its resolutions; ``metadata`` becomes the decision's ``payload``."""
    body = _body(resolution=resolution, metadata=dict(metadata) if metadata is not None else None)
    return _send("POST", f"{_ws(workspace)}/requests/{_seg(request_id)}/resolve", _one(Request.parse), body)


# -- workflows -------------------------------------------------------------------------------------------------
def list_workflows(workspace: str, limit: int = 50, cursor: str | None = None) -> Call[Page[Workflow]]:
    """Workflows by name, each with its last run status (no files)."""
    return _get(f"{_ws(workspace)}/workflows", _page(Workflow.parse), _params(limit=limit, cursor=cursor))


def get_workflow(workspace: str, workflow: str) -> Call[Workflow]:
    """A workflow with its draft files, settings and deployed version."""
    return _get(_wf(workspace, workflow), _one(Workflow.parse))


def create_workflow(
    workspace: str, name: str, files: Mapping[str, str] | None = None, description: str = ""
) -> Call[Workflow]:
    body = _body(name=name, description=description, files=dict(files) if files is not None else None)
    return _send("POST", f"{_ws(workspace)}/workflows", _one(Workflow.parse), body)


def update_workflow(
    workspace: str,
    workflow: str,
    *,
    files: Mapping[str, str] | None = None,
    description: str | None = None,
    name: str | None = None,
) -> Call[Workflow]:
    """Replace the draft's files, change the description, or rename (``name``); omitted fields stay."""
    body = _body(name=name, description=description, files=dict(files) if files is not None else None)
    return _send("PATCH", _wf(workspace, workflow), _one(Workflow.parse), body)


def delete_workflow(workspace: str, workflow: str) -> Call[None]:
    return _send("DELETE", _wf(workspace, workflow), _none)


def put_file(workspace: str, workflow: str, path: str, content: str) -> Call[Workflow]:
    """Write one draft file (``queries/x.sql``, ``main.py``, ...)."""
    url = f"{_wf(workspace, workflow)}/files/{quote(path, safe='/')}"
    return _send("PUT", url, _one(Workflow.parse), {"content": content})


def delete_file(workspace: str, workflow: str, path: str) -> Call[None]:
    return _send("DELETE", f"{_wf(workspace, workflow)}/files/{quote(path, safe='/')}", _none)


def _diagnostics(response: httpx.Response) -> list[Diagnostic]:
    body = response.json()
    if isinstance(body, dict):
        body = body.get("diagnostics", body.get("items", []))
    return [Diagnostic.parse(d) for d in body or ()]


def lint(workspace: str, workflow: str, files: Mapping[str, str] | None = None) -> Call[list[Diagnostic]]:
    """Diagnostics for the draft, or for ``files`` if given (the draft is not changed)."""
    body = {"files": dict(files)} if files is not None else None
    return _send("POST", f"{_wf(workspace, workflow)}/lint", _diagnostics, body)


def deploy(workspace: str, workflow: str) -> Call[int]:
    """Deploy the draft as a new version and return its number. Lint errors: ``Unprocessable`` with them in
    ``.errors``."""
    return _send("POST", f"{_wf(workspace, workflow)}/deploy", lambda r: int(r.json()["version"]))


def versions(workspace: str, workflow: str, limit: int = 50, cursor: str | None = None) -> Call[Page[Version]]:
    """Deployed versions, newest first (without files; ``get_version`` has them)."""
    return _get(f"{_wf(workspace, workflow)}/versions", _page(Version.parse), _params(limit=limit, cursor=cursor))


def get_version(workspace: str, workflow: str, number: int) -> Call[Version]:
    return _get(f"{_wf(workspace, workflow)}/versions/{_seg(number)}", _one(Version.parse))


def restore_version(workspace: str, workflow: str, number: int) -> Call[Workflow]:
    """Copy a deployed version's files into the draft."""
    return _send("POST", f"{_wf(workspace, workflow)}/versions/{_seg(number)}/restore", _one(Workflow.parse))


def enable_webhook(workspace: str, workflow: str, hmac: bool = False) -> Call[dict[str, Any]]:
    """Enable or regenerate the webhook → ``{"url", "token", ...}``, shown only this once."""
    body = {"hmac": True} if hmac else None
    return _send("POST", f"{_wf(workspace, workflow)}/webhook", _as_dict, body)


def disable_webhook(workspace: str, workflow: str) -> Call[None]:
    return _send("DELETE", f"{_wf(workspace, workflow)}/webhook", _none)


def _schedule(response: httpx.Response) -> Schedule:
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("schedule"), dict):
        body = body["schedule"]
    return Schedule.parse(body)


def set_schedule(
    workspace: str,
    workflow: str,
    cron: str,
    timezone: str = "UTC",
    data: Any = None,
    enabled: bool = True,
) -> Call[Schedule]:
    """Run the workflow on a cron schedule (``*/5 * * * *``) in ``timezone`` with input ``data``."""
    body = {"cron": cron, "timezone": timezone, "data": data if data is not None else {}, "enabled": enabled}
    return _send("PUT", f"{_wf(workspace, workflow)}/schedule", _schedule, body)


def delete_schedule(workspace: str, workflow: str) -> Call[None]:
    return _send("DELETE", f"{_wf(workspace, workflow)}/schedule", _none)


def run_query(workspace: str, workflow: str, query: str, params: Mapping[str, Any] | None = None) -> Call[Any]:
    """Run one query of the draft with ``params`` (what the editor's "Run query" does)."""
    url = f"{_wf(workspace, workflow)}/queries/{_seg(query)}/run"
    return _send("POST", url, _json, {"params": dict(params or {})})


# -- datasources -----------------------------------------------------------------------------------------------
def _ds(workspace: str, name: str | None = None) -> str:
    return f"{_ws(workspace)}/datasources" + (f"/{_seg(name)}" if name is not None else "")


def list_datasources(workspace: str) -> Call[list[Datasource]]:
    return _get(_ds(workspace), _list(Datasource.parse))


def get_datasource(workspace: str, name: str) -> Call[Datasource]:
    return _get(_ds(workspace, name), _one(Datasource.parse))


def create_datasource(
    workspace: str,
    name: str,
    kind: str,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Call[Datasource]:
    body = {"name": name, "kind": kind, "config": dict(config or {}), "secrets": dict(secrets or {})}
    return _send("POST", _ds(workspace), _one(Datasource.parse), body)


def update_datasource(
    workspace: str,
    name: str,
    *,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Call[Datasource]:
    """Change config and/or set secrets; secrets not named stay as they are."""
    body = _body(config=dict(config) if config is not None else None, secrets=dict(secrets) if secrets else None)
    return _send("PATCH", _ds(workspace, name), _one(Datasource.parse), body)


def delete_datasource(workspace: str, name: str) -> Call[None]:
    return _send("DELETE", _ds(workspace, name), _none)


def test_datasource(workspace: str, name: str) -> Call[dict[str, Any]]:
    """Try to connect with the saved settings → the server's report (``{"ok": bool, ...}``)."""
    return _send("POST", f"{_ds(workspace, name)}/test", _as_dict)
