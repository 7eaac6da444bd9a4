"""Users, workspaces, memberships, groups, API keys and sessions: the operations, with who-may-do-what.

Passwords are hashed with argon2id (``argon2-cffi`` defaults). API keys and session tokens are random
(``secrets.token_urlsafe``), shown once, stored as SHA-256 hashes and compared with ``hmac.compare_digest``.
A presented token has the form ``lwk_<id>_<secret>`` (API key) or ``lws_<id>_<secret>`` (session): the id
finds the row, the secret is checked against its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..engine import Engine
from ..errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from ..folder import check_name
from ..model import ApiKey, Group, Member, Role, User, Workspace
from ..store import identity, utcnow

SESSION_LIFETIME = timedelta(days=7)
_hasher = PasswordHasher()
#: Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("loomwork-no-such-user")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_token(prefix: str) -> tuple[str, str, str]:
    """``(id, secret, presented token)``."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{prefix}_{token_id}_{secret}"


def _split_token(token: str) -> tuple[str, str, str] | None:
    prefix, sep, rest = token.partition("_")
    token_id, sep2, secret = rest.partition("_")
    if not sep or not sep2 or not token_id or not secret:
        return None
    return prefix, token_id, secret


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or not domain or " " in value or len(value) > 254:
        raise Unprocessable(f"{email!r} is not an email address")
    return value


def check_password(password: str) -> None:
    if len(password) < 8:
        raise Unprocessable("a password needs at least 8 characters")
    if len(password) > 1024:
        raise Unprocessable("a password may have at most 1024 characters")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user through an API key (bound to one workspace) or a login session."""

    user: User
    via: str  # "key" or "session"
    key: ApiKey | None = None
    session_id: str | None = None
    csrf_token: str | None = None


@dataclass(frozen=True, slots=True)
class Access:
    """A principal's standing in one workspace."""

    principal: Principal
    workspace: str
    role: Role

    @property
    def email(self) -> str:
        return self.principal.user.email

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def require(self, needed: Role) -> None:
        if not self.role.allows(needed):
            raise Forbidden(f"this needs the {needed.value} role in workspace {self.workspace!r}; you have {self.role}")


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    csrf_token: str
    user: User
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: ApiKey
    secret: str


class Accounts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine.db

    # -- authentication -------------------------------------------------------------------------------------
    async def login(self, email: str, password: str) -> Login:
        found = await self.db.read(identity.password_hash, email.strip().lower())
        stored = found[1] if found else None
        ok = await _verify_password(stored or _DUMMY_HASH, password)
        if found is None or stored is None or not ok:
            raise Unauthorized("wrong email or password")
        user = found[0]
        session_id, secret, token = _new_token("lws")
        csrf = secrets.token_urlsafe(24)
        expires = utcnow() + SESSION_LIFETIME
        await self.db.write(identity.create_session, session_id, user.id, hash_secret(secret), csrf, expires)
        return Login(token, csrf, user, expires)

    async def logout(self, principal: Principal) -> None:
        if principal.session_id is not None:
            await self.db.write(identity.delete_session, principal.session_id)

    async def authenticate(self, token: str) -> Principal:
        parts = _split_token(token)
        if parts is None:
            raise Unauthorized("invalid credentials")
        prefix, token_id, secret = parts
        if prefix == "lwk":
            found = await self.db.read(identity.api_key_secret, token_id)
            if found is None or not hmac.compare_digest(found[2], hash_secret(secret)):
                raise Unauthorized("invalid credentials")
            key, user_id, _ = found
            user = await self.db.read(identity.get_user, user_id)
            return Principal(user=user, via="key", key=key)
        if prefix == "lws":
            session = await self.db.read(identity.session_secret, token_id)
            if session is None or not hmac.compare_digest(session[1], hash_secret(secret)):
                raise Unauthorized("invalid credentials")
            user, _, csrf, expires_at = session
            if expires_at <= utcnow():
                raise Unauthorized("the session has expired; log in again")
            return Principal(user=user, via="session", session_id=token_id, csrf_token=csrf)
        raise Unauthorized("invalid credentials")

    async def access(self, principal: Principal, workspace: str) -> Access:
        """The caller's role in ``workspace``; a workspace they cannot see answers NotFound, never Forbidden."""
        if principal.key is not None:
            if principal.key.workspace != workspace:
                raise NotFound(f"workspace {workspace!r} not found")
            role = await self.db.read(identity.role_of, workspace, principal.user.id)
            if role is None:
                raise NotFound(f"workspace {workspace!r} not found")
            # A key acts with its own role, never above its owner's current one.
            effective = principal.key.role if role.allows(principal.key.role) else role
            return Access(principal, workspace, effective)
        role = await self.db.read(identity.role_of, workspace, principal.user.id)
        if role is None:
            raise NotFound(f"workspace {workspace!r} not found")
        return Access(principal, workspace, role)

    # -- users and workspaces -------------------------------------------------------------------------------
    async def ensure_user(self, email: str, password: str | None, name: str | None = None) -> User:
        email = normalise_email(email)
        existing = await self.db.read(identity.find_user, email)
        if existing is not None:
            return existing
        hashed = None
        if password is not None:
            check_password(password)
            hashed = await _hash_password(password)
        return await self.db.write(identity.create_user, email, name or email.split("@")[0], hashed)

    async def set_password(self, user: User, password: str) -> None:
        check_password(password)
        await self.db.write(identity.set_password_hash, user.id, await _hash_password(password))

    async def create_workspace(self, principal: Principal | None, slug: str, name: str | None) -> Workspace:
        check_name(slug, "workspace slug")
        admin = principal.user.id if principal is not None else None
        return await self.db.write(identity.create_workspace, slug, name or slug, admin)

    async def workspaces_of(self, user: User) -> list[tuple[Workspace, Role | None]]:
        return await self.db.read(identity.list_workspaces, user.id)

    async def get_workspace(self, access: Access) -> Workspace:
        return await self.db.read(identity.get_workspace, access.workspace)

    async def rename_workspace(self, access: Access, name: str) -> Workspace:
        access.require(Role.ADMIN)
        return await self.db.write(identity.rename_workspace, access.workspace, name)

    async def delete_workspace(self, access: Access) -> None:
        access.require(Role.ADMIN)
        await self.db.write(identity.delete_workspace, access.workspace)

    # -- members --------------------------------------------------------------------------------------------
    async def list_members(self, access: Access) -> list[Member]:
        return await self.db.read(identity.list_members, access.workspace)

    async def add_member(
        self, access: Access, email: str, role: Role, name: str | None = None, password: str | None = None
    ) -> Member:
        access.require(Role.ADMIN)
        user = await self.ensure_user(email, password, name)
        await self.db.write(identity.add_member, access.workspace, user.id, role)
        return await self.db.read(identity.get_member, access.workspace, user.email)

    async def update_member(self, access: Access, email: str, role: Role | None, name: str | None) -> Member:
        access.require(Role.ADMIN)
        member = await self.db.read(identity.get_member, access.workspace, normalise_email(email))
        if role is not None:
            await self.db.write(identity.set_role, access.workspace, member.user.id, role)
        if name is not None:
            await self.db.write(identity.set_user_name, member.user.id, name)
        return await self.db.read(identity.get_member, access.workspace, member.user.email)

    async def remove_member(self, access: Access, email: str) -> None:
        access.require(Role.ADMIN)
        member = await self.db.read(identity.get_member, access.workspace, normalise_email(email))
        await self.db.write(identity.remove_member, access.workspace, member.user.id)

    async def me(self, principal: Principal) -> dict[str, Any]:
        spaces = await self.workspaces_of(principal.user)
        out = []
        for workspace, role in spaces:
            if principal.key is not None and principal.key.workspace != workspace.slug:
                continue
            groups = await self.db.read(identity.groups_of, workspace.slug, principal.user.email)
            effective = role
            if principal.key is not None and role is not None and role.allows(principal.key.role):
                effective = principal.key.role
            out.append({"slug": workspace.slug, "name": workspace.name, "role": effective, "groups": groups})
        return {"user": principal.user, "workspaces": out, "via": principal.via}

    # -- groups ---------------------------------------------------------------------------------------------
    async def list_groups(self, access: Access) -> list[Group]:
        return await self.db.read(identity.list_groups, access.workspace)

    async def create_group(self, access: Access, name: str, members: Iterable[str]) -> Group:
        access.require(Role.ADMIN)
        check_name(name, "group name")
        emails = [normalise_email(e) for e in members]
        return await self.db.write(identity.create_group, access.workspace, name, emails)

    async def set_group(self, access: Access, name: str, members: Iterable[str]) -> Group:
        access.require(Role.ADMIN)
        check_name(name, "group name")
        emails = [normalise_email(e) for e in members]
        return await self.db.write(identity.set_group_members, access.workspace, name, emails, create=True)

    async def delete_group(self, access: Access, name: str) -> None:
        access.require(Role.ADMIN)
        await self.db.write(identity.delete_group, access.workspace, name)

    # -- API keys -------------------------------------------------------------------------------------------
    async def create_api_key(self, access: Access, name: str, role: Role | None) -> NewApiKey:
        wanted = role or access.role
        if not access.role.allows(wanted):
            raise Forbidden(f"a key cannot have a higher role ({wanted}) than yours ({access.role})")
        if not name.strip():
            raise Unprocessable("an API key needs a name")
        key_id, secret, token = _new_token("lwk")
        key = await self.db.write(
            identity.create_api_key,
            key_id,
            access.workspace,
            access.principal.user.id,
            name.strip(),
            wanted,
            hash_secret(secret),
        )
        return NewApiKey(key, token)

    async def list_api_keys(self, access: Access) -> list[ApiKey]:
        owner = None if access.is_admin else access.principal.user.id
        return await self.db.read(identity.list_api_keys, access.workspace, owner)

    async def delete_api_key(self, access: Access, key_id: str) -> None:
        owner = None if access.is_admin else access.principal.user.id
        await self.db.write(identity.delete_api_key, access.workspace, key_id, owner)

    # -- first start ----------------------------------------------------------------------------------------
    async def bootstrap(self, email: str, password: str, workspace: str, key_name: str = "init") -> NewApiKey:
        """The first admin and workspace, idempotently: run twice, it changes nothing but issues a new key."""
        check_name(workspace, "workspace slug")
        user = await self.ensure_user(email, password)
        found = await self.db.read(identity.password_hash, user.email)
        if found is not None and found[1] is None:
            await self.set_password(user, password)
        try:
            await self.db.write(identity.create_workspace, workspace, workspace, user.id)
        except Conflict:
            role = await self.db.read(identity.role_of, workspace, user.id)
            if role is None:
                await self.db.write(identity.add_member, workspace, user.id, Role.ADMIN)
            elif role is not Role.ADMIN:
                await self.db.write(identity.set_role, workspace, user.id, Role.ADMIN)
        principal = Principal(user=user, via="init")
        return await self.create_api_key(Access(principal, workspace, Role.ADMIN), key_name, Role.ADMIN)


async def _hash_password(password: str) -> str:
    import asyncio

    return await asyncio.to_thread(_hasher.hash, password)


async def _verify_password(stored: str, password: str) -> bool:
    import asyncio

    def verify() -> bool:
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
