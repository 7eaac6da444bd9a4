"""The product's operations over the engine: accounts, workflows, triggers, schedules, run history, requests.

Each operation takes the caller's :class:`~loomwork.service.accounts.Access` and checks its role; the HTTP layer
(``loomwork.server``) only translates. Nothing here knows about HTTP.
"""
