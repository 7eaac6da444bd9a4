"""``Client`` (blocking) and ``AsyncClient`` (``await``-able): the same API methods over httpx.

Every API method is declared once, in :class:`_Api`, as an :class:`endpoint` wrapping a call builder from
:mod:`.calls`. Read through a ``Client`` an endpoint is a plain method returning the result; read through an
``AsyncClient`` it is a coroutine method. Type checkers see both signatures (``ParamSpec``), so
``client.trigger(...)`` is typed ``TriggerResult`` and ``await aclient.trigger(...)`` too.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar, overload

import httpx

from . import calls
from .calls import Call
from .errors import ConnectionFailed
from .types import Run

P = ParamSpec("P")
T = TypeVar("T")

API_PATH = "/api/v1"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "loomwork-client"


def api_root(base_url: str) -> str:
    """``http://host:8080`` or ``http://host:8080/api/v1`` → ``http://host:8080/api/v1``."""
    root = base_url.rstrip("/")
    return root if root.endswith(API_PATH) else root + API_PATH


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _connection_failed(root: str, exc: httpx.HTTPError) -> ConnectionFailed:
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(f"no answer from {root} in time ({type(exc).__name__})")
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed(f"cannot reach the Loomwork server at {root}: {reason}")


def _request_args(call: Call[Any], timeout: float) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params or None}
    if call.json is not None:
        args["json"] = call.json
    if call.extra_timeout:
        args["timeout"] = timeout + call.extra_timeout
    return args


class _SyncExecutor:
    _http: httpx.Client
    _root: str
    _timeout: float

    def _execute(self, call: Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, **_request_args(call, self._timeout))
        except httpx.HTTPError as exc:  # transport errors only: statuses are handled by call.result
            raise _connection_failed(self._root, exc) from exc
        return call.result(response)


class _AsyncExecutor:
    _http: httpx.AsyncClient
    _root: str
    _timeout: float

    async def _execute(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, **_request_args(call, self._timeout))
        except httpx.HTTPError as exc:
            raise _connection_failed(self._root, exc) from exc
        return call.result(response)


class endpoint(Generic[P, T]):
    """An API method built from a call builder: sync on a ``Client``, a coroutine on an ``AsyncClient``."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__
        self._name = build.__name__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> endpoint[P, T]: ...
    @overload
    def __get__(self, obj: _SyncExecutor, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: _AsyncExecutor, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: object, owner: type[Any]) -> Any:
        if obj is None:
            return self
        build = self._build
        if isinstance(obj, _AsyncExecutor):
            executor_async = obj

            async def run_async(*args: P.args, **kwargs: P.kwargs) -> T:
                return await executor_async._execute(build(*args, **kwargs))

            return functools.update_wrapper(run_async, build)
        if isinstance(obj, _SyncExecutor):
            executor = obj

            def run(*args: P.args, **kwargs: P.kwargs) -> T:
                return executor._execute(build(*args, **kwargs))

            return functools.update_wrapper(run, build)
        raise TypeError(f"{self._name} belongs to Client or AsyncClient")


class _Api:
    """The API methods (SPEC §4), shared by both clients. Workspace first, where the resource lives in one."""

    # auth and identity
    me = endpoint(calls.me)
    logout = endpoint(calls.logout)
    list_workspaces = endpoint(calls.list_workspaces)
    create_workspace = endpoint(calls.create_workspace)
    get_workspace = endpoint(calls.get_workspace)
    list_members = endpoint(calls.list_members)
    add_member = endpoint(calls.add_member)
    update_member = endpoint(calls.update_member)
    remove_member = endpoint(calls.remove_member)
    list_groups = endpoint(calls.list_groups)
    create_group = endpoint(calls.create_group)
    set_group = endpoint(calls.set_group)
    delete_group = endpoint(calls.delete_group)
    list_api_keys = endpoint(calls.list_api_keys)
    create_api_key = endpoint(calls.create_api_key)
    delete_api_key = endpoint(calls.delete_api_key)
    # runs
    trigger = endpoint(calls.trigger)
    get_run = endpoint(calls.get_run)
    list_runs = endpoint(calls.list_runs)
    cancel_run = endpoint(calls.cancel_run)
    retry_run = endpoint(calls.retry_run)
    get_logs = endpoint(calls.get_logs)
    # requests
    get_requests = endpoint(calls.get_requests)
    get_request = endpoint(calls.get_request)
    resolve_request = endpoint(calls.resolve_request)
    # workflows
    list_workflows = endpoint(calls.list_workflows)
    get_workflow = endpoint(calls.get_workflow)
    create_workflow = endpoint(calls.create_workflow)
    update_workflow = endpoint(calls.update_workflow)
    delete_workflow = endpoint(calls.delete_workflow)
    put_file = endpoint(calls.put_file)
    delete_file = endpoint(calls.delete_file)
    lint = endpoint(calls.lint)
    deploy = endpoint(calls.deploy)
    versions = endpoint(calls.versions)
    get_version = endpoint(calls.get_version)
    restore_version = endpoint(calls.restore_version)
    enable_webhook = endpoint(calls.enable_webhook)
    disable_webhook = endpoint(calls.disable_webhook)
    set_schedule = endpoint(calls.set_schedule)
    delete_schedule = endpoint(calls.delete_schedule)
    run_query = endpoint(calls.run_query)
    # datasources
    list_datasources = endpoint(calls.list_datasources)
    get_datasource = endpoint(calls.get_datasource)
    create_datasource = endpoint(calls.create_datasource)
    update_datasource = endpoint(calls.update_datasource)
    delete_datasource = endpoint(calls.delete_datasource)
    test_datasource = endpoint(calls.test_datasource)


def _run_pages_args(
    workflow: str | None, status: str | Iterable[str] | None, trigger: str | None, kwargs: dict[str, Any]
) -> dict[str, Any]:
    return {"workflow": workflow, "status": status, "trigger": trigger, **kwargs}


class Client(_Api, _SyncExecutor):
    """A blocking client of a Loomwork server.

    ``Client("http://127.0.0.1:8080", api_key)``; use it as a context manager or call ``close()``.
    ``transport`` is handed to ``httpx.Client`` (a test seam, or custom TLS/proxy settings).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._root = api_root(base_url)
        self._timeout = timeout
        self.api_key = api_key
        self._http = httpx.Client(base_url=self._root, headers=_headers(api_key), transport=transport, timeout=timeout)

    @classmethod
    def login(
        cls,
        base_url: str,
        email: str,
        password: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Client:
        """Log in with email and password; the returned client uses the session token as its key."""
        with cls(base_url, transport=transport, timeout=timeout) as anonymous:
            token = str(anonymous._execute(calls.login(email, password))["token"])
        return cls(base_url, token, transport=transport, timeout=timeout)

    def iter_runs(
        self,
        workspace: str,
        workflow: str | None = None,
        status: str | Iterable[str] | None = None,
        trigger: str | None = None,
        page_size: int = 100,
        **filters: Any,
    ) -> Iterator[Run]:
        """Every run matching the filters, newest first, fetching pages as needed."""
        cursor: str | None = None
        while True:
            args = _run_pages_args(workflow, status, trigger, filters)
            page = self._execute(calls.list_runs(workspace, limit=page_size, cursor=cursor, **args))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self._root!r})"


class AsyncClient(_Api, _AsyncExecutor):
    """The same methods as :class:`Client`, each awaitable. ``async with AsyncClient(url, key) as client:``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._root = api_root(base_url)
        self._timeout = timeout
        self.api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=self._root, headers=_headers(api_key), transport=transport, timeout=timeout
        )

    @classmethod
    async def login(
        cls,
        base_url: str,
        email: str,
        password: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> AsyncClient:
        """Log in with email and password; the returned client uses the session token as its key."""
        async with cls(base_url, transport=transport, timeout=timeout) as anonymous:
            token = str((await anonymous._execute(calls.login(email, password)))["token"])
        return cls(base_url, token, transport=transport, timeout=timeout)

    async def iter_runs(
        self,
        workspace: str,
        workflow: str | None = None,
        status: str | Iterable[str] | None = None,
        trigger: str | None = None,
        page_size: int = 100,
        **filters: Any,
    ) -> AsyncIterator[Run]:
        """Every run matching the filters, newest first, fetching pages as needed."""
        cursor: str | None = None
        while True:
            args = _run_pages_args(workflow, status, trigger, filters)
            page = await self._execute(calls.list_runs(workspace, limit=page_size, cursor=cursor, **args))
            for run in page.items:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self._root!r})"
