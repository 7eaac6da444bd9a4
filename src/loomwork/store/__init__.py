"""Persistence: SQLAlchemy Core over SQLite (embedded) or PostgreSQL (scale-out)."""

from .base import Notification, Store, Tx, parse_notify_payload, sqlite_url, utcnow

__all__ = ["Notification", "Store", "Tx", "parse_notify_payload", "sqlite_url", "utcnow"]
