"""Who may be asked, and who may answer: the engine's view of members and groups.

The engine asks a :class:`Directory`; the server plugs in one backed by its users and groups tables, local runs
use :class:`OpenDirectory` (no members exist, so assignees are shown but not checked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from ..errors import InvalidRequest


class Directory(Protocol):
    def check_assignees(self, workspace: str, users: Iterable[str], groups: Iterable[str]) -> None:
        """Raise :class:`InvalidRequest` naming any user who is not a member or group that does not exist."""

    def may_resolve(
        self, workspace: str, actor: str, users: Iterable[str], groups: Iterable[str], *, admin: bool
    ) -> bool:
        """True if ``actor`` is a listed user, a member of a listed group, or acting as a workspace admin."""


class OpenDirectory:
    """Everyone exists and anyone may resolve: for ``loomwork run`` on a laptop."""

    def check_assignees(self, workspace: str, users: Iterable[str], groups: Iterable[str]) -> None:
        return None

    def may_resolve(
        self, workspace: str, actor: str, users: Iterable[str], groups: Iterable[str], *, admin: bool
    ) -> bool:
        return True


class StaticDirectory:
    """Members and groups given up front (tests, embedding)."""

    def __init__(self, members: Iterable[str], groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self.members = set(members)
        self.groups = {name: set(users) for name, users in (groups or {}).items()}

    def check_assignees(self, workspace: str, users: Iterable[str], groups: Iterable[str]) -> None:
        reject_unknown_assignees(workspace, set(users) - self.members, set(groups) - set(self.groups))

    def may_resolve(
        self, workspace: str, actor: str, users: Iterable[str], groups: Iterable[str], *, admin: bool
    ) -> bool:
        if admin or actor in set(users):
            return True
        return any(actor in self.groups.get(group, ()) for group in groups)


def reject_unknown_assignees(workspace: str, unknown_users: Iterable[str], unknown_groups: Iterable[str]) -> None:
    """Raise :class:`InvalidRequest` naming the unknown users and groups, if there are any."""
    problems = []
    if users := sorted(unknown_users):
        problems.append(f"not members of workspace {workspace!r}: {', '.join(users)}")
    if groups := sorted(unknown_groups):
        problems.append(f"no such group(s) in workspace {workspace!r}: {', '.join(groups)}")
    if problems:
        raise InvalidRequest("request assignees are invalid: " + "; ".join(problems))
