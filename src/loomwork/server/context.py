"""What the HTTP layer needs at hand: the engine, the services over it, the settings."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..engine import Engine
from ..service.accounts import Accounts
from ..service.datasources import Datasources
from ..service.history import History
from ..service.inbox import Inbox
from ..service.triggers import Triggers
from ..service.workflows import Workflows
from ..settings import Settings
from .metrics import Metrics


@dataclass
class Context:
    engine: Engine
    settings: Settings
    accounts: Accounts
    workflows: Workflows
    triggers: Triggers
    history: History
    inbox: Inbox
    metrics: Metrics
    datasources: Datasources

    @classmethod
    def of(cls, engine: Engine, settings: Settings) -> Context:
        workflows = Workflows(engine)
        return cls(
            engine=engine,
            settings=settings,
            accounts=Accounts(engine),
            workflows=workflows,
            triggers=Triggers(engine, workflows),
            history=History(engine),
            inbox=Inbox(engine),
            metrics=Metrics(engine),
            datasources=Datasources(engine),
        )


async def context(request: Request) -> Context:
    """A coroutine, so FastAPI calls it on the event loop rather than in its thread pool."""
    ctx: Context = request.app.state.context
    return ctx
