"""Run log lines: appended in batches by the engine, read back in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..model import LogLevel, LogLine
from .base import Tx
from .rows import log_from_row
from .schema import logs

_INSERT_LOG = logs.insert()


def append_logs(tx: Tx, lines: list[tuple[str, datetime, LogLevel, str, dict[str, Any]]]) -> None:
    if not lines:
        return
    tx.conn.execute(
        _INSERT_LOG,
        [
            {"run_id": run_id, "ts": ts, "level": level.value, "message": message, "fields": fields}
            for run_id, ts, level, message, fields in lines
        ],
    )
    for run_id in {line[0] for line in lines}:
        tx.notify("log", run_id)


append_logs.merge_rows = True  # type: ignore[attr-defined]


def read_logs(tx: Tx, run_id: str, after: int = 0, limit: int = 1000) -> list[LogLine]:
    rows = tx.conn.execute(
        sa.select(logs).where(logs.c.run_id == run_id, logs.c.id > after).order_by(logs.c.id).limit(limit)
    )
    return [log_from_row(row) for row in rows]
