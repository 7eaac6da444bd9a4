"""Identity and tenancy: workspaces, users, memberships, groups, API keys and login sessions.

Secrets are never stored: API keys and session tokens are kept as SHA-256 hashes of high-entropy random
strings (a fast hash is right for those); passwords arrive here already hashed with argon2 by ``accounts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from ..model import ApiKey, Group, Member, Role, User, Workspace
from .base import Tx, as_utc, utcnow
from .schema import api_keys, group_members, groups, members, sessions, users, workspaces


# -- workspaces ------------------------------------------------------------------------------------------------
def _workspace(row: Any) -> Workspace:
    return Workspace(slug=row.slug, name=row.name, created_at=as_utc(row.created_at))  # type: ignore[arg-type]


def create_workspace(tx: Tx, slug: str, name: str, admin_user_id: int | None) -> Workspace:
    if tx.conn.execute(sa.select(workspaces.c.slug).where(workspaces.c.slug == slug)).first() is not None:
        raise Conflict(f"workspace {slug!r} already exists")
    now = utcnow()
    tx.conn.execute(workspaces.insert().values(slug=slug, name=name, created_at=now))
    if admin_user_id is not None:
        tx.conn.execute(
            members.insert().values(workspace=slug, user_id=admin_user_id, role=Role.ADMIN.value, created_at=now)
        )
    return Workspace(slug, name, now)


def get_workspace(tx: Tx, slug: str) -> Workspace:
    row = tx.conn.execute(sa.select(workspaces).where(workspaces.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"workspace {slug!r} not found")
    return _workspace(row)


def list_workspaces(tx: Tx, user_id: int | None) -> list[tuple[Workspace, Role | None]]:
    """The workspaces a user belongs to, with their role; ``None``: every workspace (no role)."""
    if user_id is None:
        rows = tx.conn.execute(sa.select(workspaces).order_by(workspaces.c.slug)).all()
        return [(_workspace(r), None) for r in rows]
    query = (
        sa.select(workspaces, members.c.role)
        .join(members, members.c.workspace == workspaces.c.slug)
        .where(members.c.user_id == user_id)
        .order_by(workspaces.c.slug)
    )
    return [(_workspace(r), Role(r.role)) for r in tx.conn.execute(query)]


def rename_workspace(tx: Tx, slug: str, name: str) -> Workspace:
    updated = tx.conn.execute(workspaces.update().where(workspaces.c.slug == slug).values(name=name)).rowcount
    if not updated:
        raise NotFound(f"workspace {slug!r} not found")
    return get_workspace(tx, slug)


def delete_workspace(tx: Tx, slug: str) -> None:
    """Delete a workspace and everything it owns (workflows, runs, members, groups, keys)."""
    from .schema import requests, runs, workflow_versions

    get_workspace(tx, slug)
    tx.conn.execute(requests.delete().where(requests.c.workspace == slug))
    tx.conn.execute(runs.delete().where(runs.c.workspace == slug))
    tx.conn.execute(workflow_versions.delete().where(workflow_versions.c.workspace == slug))
    tx.conn.execute(group_members.delete().where(group_members.c.workspace == slug))
    tx.conn.execute(workspaces.delete().where(workspaces.c.slug == slug))


# -- users -----------------------------------------------------------------------------------------------------
def _user(row: Any) -> User:
    return User(id=row.id, email=row.email, name=row.name, created_at=as_utc(row.created_at))  # type: ignore[arg-type]


def create_user(tx: Tx, email: str, name: str, password_hash: str | None) -> User:
    if find_user(tx, email) is not None:
        raise Conflict(f"a user with email {email!r} already exists")
    now = utcnow()
    user_id = tx.conn.execute(
        users.insert().values(email=email, name=name, password_hash=password_hash, created_at=now).returning(users.c.id)
    ).scalar_one()
    return User(user_id, email, name, now)


def find_user(tx: Tx, email: str) -> User | None:
    row = tx.conn.execute(sa.select(users).where(users.c.email == email)).first()
    return None if row is None else _user(row)


def get_user(tx: Tx, user_id: int) -> User:
    row = tx.conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return _user(row)


def password_hash(tx: Tx, email: str) -> tuple[User, str | None] | None:
    row = tx.conn.execute(sa.select(users).where(users.c.email == email)).first()
    return None if row is None else (_user(row), row.password_hash)


def set_password_hash(tx: Tx, user_id: int, password_hash: str | None) -> None:
    tx.conn.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))


def set_user_name(tx: Tx, user_id: int, name: str) -> None:
    tx.conn.execute(users.update().where(users.c.id == user_id).values(name=name))


# -- members ---------------------------------------------------------------------------------------------------
def role_of(tx: Tx, workspace: str, user_id: int) -> Role | None:
    role = tx.conn.execute(
        sa.select(members.c.role).where(members.c.workspace == workspace, members.c.user_id == user_id)
    ).scalar_one_or_none()
    return None if role is None else Role(role)


def list_members(tx: Tx, workspace: str) -> list[Member]:
    query = (
        sa.select(users, members.c.role)
        .join(members, members.c.user_id == users.c.id)
        .where(members.c.workspace == workspace)
        .order_by(users.c.email)
    )
    return [Member(workspace, _user(r), Role(r.role)) for r in tx.conn.execute(query)]


def get_member(tx: Tx, workspace: str, email: str) -> Member:
    row = tx.conn.execute(
        sa.select(users, members.c.role)
        .join(members, members.c.user_id == users.c.id)
        .where(members.c.workspace == workspace, users.c.email == email)
    ).first()
    if row is None:
        raise NotFound(f"{email!r} is not a member of workspace {workspace!r}")
    return Member(workspace, _user(row), Role(row.role))


def add_member(tx: Tx, workspace: str, user_id: int, role: Role) -> None:
    if role_of(tx, workspace, user_id) is not None:
        raise Conflict("already a member of this workspace")
    tx.conn.execute(members.insert().values(workspace=workspace, user_id=user_id, role=role.value, created_at=utcnow()))


def set_role(tx: Tx, workspace: str, user_id: int, role: Role) -> None:
    _keep_an_admin(tx, workspace, user_id, role)
    tx.conn.execute(
        members.update().where(members.c.workspace == workspace, members.c.user_id == user_id).values(role=role.value)
    )
    # A key never acts with more than its owner's role.
    for key_id, key_role in tx.conn.execute(
        sa.select(api_keys.c.id, api_keys.c.role).where(
            api_keys.c.workspace == workspace, api_keys.c.user_id == user_id
        )
    ).all():
        if not role.allows(Role(key_role)):
            tx.conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(role=role.value))


def remove_member(tx: Tx, workspace: str, user_id: int) -> None:
    _keep_an_admin(tx, workspace, user_id, None)
    tx.conn.execute(members.delete().where(members.c.workspace == workspace, members.c.user_id == user_id))
    tx.conn.execute(
        group_members.delete().where(group_members.c.workspace == workspace, group_members.c.user_id == user_id)
    )
    tx.conn.execute(api_keys.delete().where(api_keys.c.workspace == workspace, api_keys.c.user_id == user_id))


def _keep_an_admin(tx: Tx, workspace: str, user_id: int, new_role: Role | None) -> None:
    if new_role is Role.ADMIN or role_of(tx, workspace, user_id) is not Role.ADMIN:
        return
    admins = tx.conn.execute(
        sa.select(sa.func.count())
        .select_from(members)
        .where(members.c.workspace == workspace, members.c.role == Role.ADMIN.value)
    ).scalar_one()
    if admins <= 1:
        raise Conflict(f"workspace {workspace!r} must keep at least one admin")


# -- groups ----------------------------------------------------------------------------------------------------
def _user_ids(tx: Tx, workspace: str, emails: Iterable[str]) -> list[int]:
    wanted = sorted(set(emails))
    if not wanted:
        return []
    rows = tx.conn.execute(
        sa.select(users.c.id, users.c.email)
        .join(members, members.c.user_id == users.c.id)
        .where(members.c.workspace == workspace, users.c.email.in_(wanted))
    ).all()
    found = {r.email: r.id for r in rows}
    missing = [e for e in wanted if e not in found]
    if missing:
        from ..errors import Unprocessable

        raise Unprocessable(f"not members of workspace {workspace!r}: {', '.join(missing)}")
    return [found[e] for e in wanted]


def list_groups(tx: Tx, workspace: str) -> list[Group]:
    rows = tx.conn.execute(sa.select(groups).where(groups.c.workspace == workspace).order_by(groups.c.name)).all()
    membership: dict[str, list[str]] = {}
    for name, email in tx.conn.execute(
        sa.select(group_members.c.group_name, users.c.email)
        .join(users, users.c.id == group_members.c.user_id)
        .where(group_members.c.workspace == workspace)
        .order_by(users.c.email)
    ).all():
        membership.setdefault(name, []).append(email)
    return [Group(workspace, r.name, tuple(membership.get(r.name, ())), as_utc(r.created_at)) for r in rows]  # type: ignore[arg-type]


def get_group(tx: Tx, workspace: str, name: str) -> Group:
    for group in list_groups(tx, workspace):
        if group.name == name:
            return group
    raise NotFound(f"group {name!r} not found in workspace {workspace!r}")


def create_group(tx: Tx, workspace: str, name: str, emails: Iterable[str]) -> Group:
    exists = tx.conn.execute(
        sa.select(groups.c.name).where(groups.c.workspace == workspace, groups.c.name == name)
    ).first()
    if exists is not None:
        raise Conflict(f"group {name!r} already exists")
    ids = _user_ids(tx, workspace, emails)
    tx.conn.execute(groups.insert().values(workspace=workspace, name=name, created_at=utcnow()))
    _set_group_members(tx, workspace, name, ids)
    return get_group(tx, workspace, name)


def set_group_members(tx: Tx, workspace: str, name: str, emails: Iterable[str], *, create: bool) -> Group:
    exists = tx.conn.execute(
        sa.select(groups.c.name).where(groups.c.workspace == workspace, groups.c.name == name)
    ).first()
    ids = _user_ids(tx, workspace, emails)
    if exists is None:
        if not create:
            raise NotFound(f"group {name!r} not found in workspace {workspace!r}")
        tx.conn.execute(groups.insert().values(workspace=workspace, name=name, created_at=utcnow()))
    _set_group_members(tx, workspace, name, ids)
    return get_group(tx, workspace, name)


def _set_group_members(tx: Tx, workspace: str, name: str, user_ids: list[int]) -> None:
    tx.conn.execute(
        group_members.delete().where(group_members.c.workspace == workspace, group_members.c.group_name == name)
    )
    if user_ids:
        tx.conn.execute(
            group_members.insert(),
            [{"workspace": workspace, "group_name": name, "user_id": uid} for uid in user_ids],
        )


def delete_group(tx: Tx, workspace: str, name: str) -> None:
    deleted = tx.conn.execute(groups.delete().where(groups.c.workspace == workspace, groups.c.name == name)).rowcount
    if not deleted:
        raise NotFound(f"group {name!r} not found in workspace {workspace!r}")
    tx.conn.execute(
        group_members.delete().where(group_members.c.workspace == workspace, group_members.c.group_name == name)
    )


def groups_of(tx: Tx, workspace: str, email: str) -> list[str]:
    return list(
        tx.conn.execute(
            sa.select(group_members.c.group_name)
            .join(users, users.c.id == group_members.c.user_id)
            .where(group_members.c.workspace == workspace, users.c.email == email)
            .order_by(group_members.c.group_name)
        ).scalars()
    )


def existing_groups(tx: Tx, workspace: str, names: Iterable[str]) -> set[str]:
    wanted = list(set(names))
    if not wanted:
        return set()
    return set(
        tx.conn.execute(
            sa.select(groups.c.name).where(groups.c.workspace == workspace, groups.c.name.in_(wanted))
        ).scalars()
    )


def member_emails(tx: Tx, workspace: str, emails: Iterable[str]) -> set[str]:
    wanted = list(set(emails))
    if not wanted:
        return set()
    return set(
        tx.conn.execute(
            sa.select(users.c.email)
            .join(members, members.c.user_id == users.c.id)
            .where(members.c.workspace == workspace, users.c.email.in_(wanted))
        ).scalars()
    )


# -- API keys --------------------------------------------------------------------------------------------------
def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        workspace=row.workspace,
        user_email=row.email,
        name=row.name,
        role=Role(row.role),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        last_used_at=as_utc(row.last_used_at),
    )


_KEY_COLUMNS = (api_keys, users.c.email)


def create_api_key(
    tx: Tx, key_id: str, workspace: str, user_id: int, name: str, role: Role, secret_hash: str
) -> ApiKey:
    tx.conn.execute(
        api_keys.insert().values(
            id=key_id,
            workspace=workspace,
            user_id=user_id,
            name=name,
            role=role.value,
            secret_hash=secret_hash,
            created_at=utcnow(),
        )
    )
    return get_api_key(tx, workspace, key_id)


def get_api_key(tx: Tx, workspace: str, key_id: str) -> ApiKey:
    row = tx.conn.execute(
        sa.select(*_KEY_COLUMNS)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.workspace == workspace, api_keys.c.id == key_id)
    ).first()
    if row is None:
        raise NotFound(f"API key {key_id!r} not found")
    return _api_key(row)


def list_api_keys(tx: Tx, workspace: str, user_id: int | None) -> list[ApiKey]:
    query = (
        sa.select(*_KEY_COLUMNS)
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.workspace == workspace)
        .order_by(api_keys.c.created_at.desc())
    )
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    return [_api_key(r) for r in tx.conn.execute(query)]


def delete_api_key(tx: Tx, workspace: str, key_id: str, user_id: int | None) -> None:
    query = api_keys.delete().where(api_keys.c.workspace == workspace, api_keys.c.id == key_id)
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    if not tx.conn.execute(query).rowcount:
        raise NotFound(f"API key {key_id!r} not found")


def api_key_secret(tx: Tx, key_id: str) -> tuple[ApiKey, int, str] | None:
    """The key, its user id and its stored hash, for checking a presented key."""
    row = tx.conn.execute(
        sa.select(*_KEY_COLUMNS, api_keys.c.user_id.label("owner_id"))
        .join(users, users.c.id == api_keys.c.user_id)
        .where(api_keys.c.id == key_id)
    ).first()
    return None if row is None else (_api_key(row), row.owner_id, row.secret_hash)


def touch_api_key(tx: Tx, key_id: str, when: datetime) -> None:
    tx.conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=when))


# -- sessions --------------------------------------------------------------------------------------------------
def create_session(
    tx: Tx, session_id: str, user_id: int, secret_hash: str, csrf_token: str, expires_at: datetime
) -> None:
    now = utcnow()
    tx.conn.execute(sessions.delete().where(sessions.c.expires_at < now))
    tx.conn.execute(
        sessions.insert().values(
            id=session_id,
            user_id=user_id,
            secret_hash=secret_hash,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
        )
    )


def session_secret(tx: Tx, session_id: str) -> tuple[User, str, str, datetime] | None:
    """The session's user, stored hash, CSRF token and expiry."""
    row = tx.conn.execute(
        sa.select(users, sessions.c.secret_hash, sessions.c.csrf_token, sessions.c.expires_at)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id == session_id)
    ).first()
    if row is None:
        return None
    return _user(row), row.secret_hash, row.csrf_token, as_utc(row.expires_at)  # type: ignore[return-value]


def delete_session(tx: Tx, session_id: str) -> None:
    tx.conn.execute(sessions.delete().where(sessions.c.id == session_id))


def count_users(tx: Tx) -> int:
    return int(tx.conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())
