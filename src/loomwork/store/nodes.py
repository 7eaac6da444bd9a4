"""Engine nodes: each process that executes runs registers here and heart-beats; stale nodes lose their runs."""

from __future__ import annotations

import socket

from .base import Tx, utcnow
from .schema import nodes


def register_node(tx: Tx, node_id: str, pid: int) -> None:
    now = utcnow()
    tx.conn.execute(
        nodes.insert().values(id=node_id, hostname=socket.gethostname(), pid=pid, started_at=now, heartbeat_at=now)
    )


def heartbeat(tx: Tx, node_id: str) -> None:
    tx.conn.execute(nodes.update().where(nodes.c.id == node_id).values(heartbeat_at=utcnow()))


def remove_node(tx: Tx, node_id: str) -> None:
    tx.conn.execute(nodes.delete().where(nodes.c.id == node_id))
