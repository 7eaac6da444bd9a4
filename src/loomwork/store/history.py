"""Read-side list queries for the API: run history (keyset-paged, newest first) and a member's requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..model import Request, RequestStatus, Run, RunStatus, Trigger
from .base import Tx
from .rows import request_from_row, run_from_row
from .schema import group_members, request_assignees, requests, runs, users, workflow_versions, workflows


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Filters of the run history. ``after`` is the (created_at, id) of the last run of the previous page."""

    workspace: str
    workflow: str | None = None
    statuses: tuple[RunStatus, ...] = ()
    trigger: Trigger | None = None
    since: datetime | None = None
    until: datetime | None = None
    test: bool | None = None
    q: str | None = None
    limit: int = 50
    after: tuple[datetime, str] | None = None


def list_runs(tx: Tx, query: RunQuery) -> list[Run]:
    """Up to ``query.limit`` runs, ordered by (created_at, id) descending, strictly after ``query.after``."""
    where: list[sa.ColumnElement[bool]] = [runs.c.workspace == query.workspace]
    if query.workflow is not None:
        where.append(runs.c.workflow == query.workflow)
    if query.statuses:
        where.append(runs.c.status.in_([s.value for s in query.statuses]))
    if query.trigger is not None:
        where.append(runs.c.trigger == query.trigger.value)
    if query.since is not None:
        where.append(runs.c.created_at >= query.since)
    if query.until is not None:
        where.append(runs.c.created_at < query.until)
    if query.test is not None:
        where.append(runs.c.test == query.test)
    if query.q:
        # JSON as text: jsonb::text on PostgreSQL; on SQLite the JSON columns already hold text.
        where.append(
            sa.or_(
                sa.cast(runs.c.input, sa.Text).icontains(query.q, autoescape=True),
                sa.cast(runs.c.output, sa.Text).icontains(query.q, autoescape=True),
            )
        )
    if query.after is not None:
        created, run_id = query.after
        where.append(sa.or_(runs.c.created_at < created, sa.and_(runs.c.created_at == created, runs.c.id < run_id)))
    statement = sa.select(runs).where(*where).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(query.limit)
    return [run_from_row(row) for row in tx.conn.execute(statement)]


def workflow_exists(tx: Tx, workspace: str, name: str) -> bool:
    """A draft or at least one deployed version of ``name`` exists in ``workspace``."""
    draft = sa.select(workflows.c.name).where(workflows.c.workspace == workspace, workflows.c.name == name)
    deployed = sa.select(workflow_versions.c.id).where(
        workflow_versions.c.workspace == workspace, workflow_versions.c.workflow == name
    )
    return bool(tx.conn.execute(sa.select(sa.or_(draft.exists(), deployed.exists()))).scalar_one())


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Filters of "get requests". ``assignee`` None means every request of the workspace (admins)."""

    workspace: str
    assignee: str | None
    workflow: str | None = None
    request_names: tuple[str, ...] = field(default=())
    status: RequestStatus = RequestStatus.PENDING
    limit: int = 10
    skip: int = 0


def _assigned_to(email: str) -> sa.ColumnElement[bool]:
    """The request lists ``email`` as a user, or a group of the request's workspace that ``email`` is in."""
    as_user = (
        sa.select(request_assignees.c.request_id)
        .where(
            request_assignees.c.request_id == requests.c.id,
            request_assignees.c.kind == "user",
            request_assignees.c.name == email,
        )
        .exists()
    )
    as_group = (
        sa.select(request_assignees.c.request_id)
        .select_from(request_assignees)
        .join(group_members, group_members.c.group_name == request_assignees.c.name)
        .join(users, users.c.id == group_members.c.user_id)
        .where(
            request_assignees.c.request_id == requests.c.id,
            request_assignees.c.kind == "group",
            group_members.c.workspace == requests.c.workspace,
            users.c.email == email,
        )
        .exists()
    )
    return sa.or_(as_user, as_group)


def list_requests(tx: Tx, query: RequestQuery) -> list[Request]:
    """Requests matching ``query``, newest first, ``skip``/``limit`` paged."""
    where: list[sa.ColumnElement[bool]] = [
        requests.c.workspace == query.workspace,
        requests.c.status == query.status.value,
    ]
    if query.workflow is not None:
        where.append(requests.c.workflow == query.workflow)
    if query.request_names:
        where.append(requests.c.request_name.in_(list(query.request_names)))
    if query.assignee is not None:
        where.append(_assigned_to(query.assignee))
    statement = (
        sa.select(requests)
        .where(*where)
        .order_by(requests.c.created_at.desc(), requests.c.id.desc())
        .limit(query.limit)
        .offset(query.skip)
    )
    return [request_from_row(row) for row in tx.conn.execute(statement)]


def is_assignee(tx: Tx, request_id: str, email: str) -> bool:
    """``email`` is a listed user of the request or a member of one of its listed groups."""
    statement = sa.select(requests.c.id).where(requests.c.id == request_id, _assigned_to(email))
    return tx.conn.execute(statement).first() is not None
