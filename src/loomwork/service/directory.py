"""The engine's :class:`~loomwork.engine.Directory` backed by the members and groups tables."""

from __future__ import annotations

from collections.abc import Iterable

from ..engine.directory import reject_unknown_assignees
from ..store import Store, identity


class DatabaseDirectory:
    """Assignees must be members (by email) or existing groups; resolvers must be among them (or admins)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def check_assignees(self, workspace: str, users: Iterable[str], groups: Iterable[str]) -> None:
        users, groups = list(users), list(groups)
        known_users = self.store.read(identity.member_emails, workspace, users)
        known_groups = self.store.read(identity.existing_groups, workspace, groups)
        reject_unknown_assignees(workspace, set(users) - known_users, set(groups) - known_groups)

    def may_resolve(
        self, workspace: str, actor: str, users: Iterable[str], groups: Iterable[str], *, admin: bool
    ) -> bool:
        if admin or actor in set(users):
            return True
        listed = set(groups)
        return bool(listed) and bool(listed & set(self.store.read(identity.groups_of, workspace, actor)))
