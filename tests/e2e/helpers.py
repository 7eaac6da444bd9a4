"""Set-up steps over the API shared by the end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from loomwork.folder import read_folder

from .conftest import EXAMPLES
from .server import WORKSPACE, ServerProcess

T = TypeVar("T")
WS = f"/workspaces/{WORKSPACE}"


def eventually(fn: Callable[[], T | None], *, timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)


def check(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


def add_member(admin: httpx.Client, server: ServerProcess, email: str, role: str, groups: tuple[str, ...] = ()) -> str:
    """Create the member with a password, log in as them and return a key of theirs."""
    check(admin.post(f"{WS}/members", json={"email": email, "role": role, "password": "member-pass-1"}), 201)
    for group in groups:
        current = {g["name"]: g["members"] for g in check(admin.get(f"{WS}/groups"), 200)["items"]}
        members = sorted({*current.get(group, []), email})
        check(admin.put(f"{WS}/groups/{group}", json={"members": members}), 200)
    with server.client(token="") as anonymous:
        token = check(anonymous.post("/auth/login", json={"email": email, "password": "member-pass-1"}), 200)["token"]
    with server.client(token=token) as member:
        key: str = check(member.post(f"{WS}/api-keys", json={"name": "e2e"}), 201)["key"]
    return key


def deploy_example(admin: httpx.Client, name: str = "refund-approval") -> None:
    files = read_folder(EXAMPLES / name)
    check(admin.post(f"{WS}/workflows", json={"name": name, "files": files}), 201)
    check(admin.post(f"{WS}/workflows/{name}/deploy"), 200)


def deploy(admin: httpx.Client, name: str, main_py: str, **extra_files: str) -> None:
    files = {"main.py": main_py, **extra_files}
    check(admin.post(f"{WS}/workflows", json={"name": name, "files": files}), 201)
    check(admin.post(f"{WS}/workflows/{name}/deploy"), 200)


def run_of(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = check(admin.get(f"{WS}/runs/{run_id}"), 200)
    return run
