"""The declared schema. Migrations under ``migrations/<dialect>/`` must produce exactly this (a test checks)."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ..model import LogLevel, RequestStatus, Role, RunStatus, StepKind, StepStatus, Trigger

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def _check(column: str, values: type[enum.StrEnum]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{column}")


schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", Timestamp, nullable=False),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace", sa.Text, nullable=False),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("files", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("workspace", "workflow", "number", name="uq_workflow_versions_number"),
)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("heartbeat_at", Timestamp, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("workspace", sa.Text, nullable=False),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("workflow_versions.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("test", sa.Boolean, nullable=False),
    sa.Column("input", Json, nullable=True),
    sa.Column("output", Json, nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("deadline_at", Timestamp, nullable=True),
    sa.Column("node_id", sa.Text, nullable=True),
    sa.Column("parent_run_id", sa.Text, nullable=True),
    sa.Column("parent_seq", sa.Integer, nullable=True),
    sa.Column("idempotency_key", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("crashes", sa.Integer, nullable=False),
    _check("status", RunStatus),
    _check("trigger", Trigger),
    sa.UniqueConstraint("workspace", "workflow", "idempotency_key", name="uq_runs_idempotency_key"),
    sa.Index("ix_runs_workflow_created", "workspace", "workflow", "created_at"),
    sa.Index("ix_runs_node", "node_id"),
    sa.Index("ix_runs_parent", "parent_run_id"),
    # Partial indexes keep the hot look-ups (what to claim, what times out next) small as history grows.
    sa.Index(
        "ix_runs_queued",
        "created_at",
        sqlite_where=sa.text("status = 'queued'"),
        postgresql_where=sa.text("status = 'queued'"),
    ),
    sa.Index(
        "ix_runs_active_deadline",
        "deadline_at",
        sqlite_where=sa.text("status IN ('queued', 'running', 'waiting') AND deadline_at IS NOT NULL"),
        postgresql_where=sa.text("status IN ('queued', 'running', 'waiting') AND deadline_at IS NOT NULL"),
    ),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("input", Json, nullable=True),
    sa.Column("output", Json, nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Column("handle", Json, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("done_order", sa.Integer, nullable=True),
    sa.Column("wake_at", Timestamp, nullable=True),
    _check("kind", StepKind),
    _check("status", StepStatus),
    sa.Index(
        "ix_steps_pending_wake",
        "wake_at",
        sqlite_where=sa.text("status = 'waiting' AND wake_at IS NOT NULL"),
        postgresql_where=sa.text("status = 'waiting' AND wake_at IS NOT NULL"),
    ),
)

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("workspace", sa.Text, nullable=False),
    sa.Column("workflow", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("request_name", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("resolutions", Json, nullable=False),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("to_users", Json, nullable=False),
    sa.Column("to_groups", Json, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("on_timeout", sa.Text, nullable=True),
    sa.Column("resolution", sa.Text, nullable=True),
    sa.Column("payload", Json, nullable=True),
    sa.Column("resolved_by", sa.Text, nullable=True),
    sa.Column("resolved_at", Timestamp, nullable=True),
    _check("status", RequestStatus),
    sa.Index("ix_requests_workspace_status", "workspace", "status", "created_at"),
    sa.Index(
        "ix_requests_pending_expiry",
        "expires_at",
        sqlite_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"),
        postgresql_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"),
    ),
    sa.Index("ix_requests_run", "run_id"),
)

request_assignees = sa.Table(
    "request_assignees",
    metadata,
    sa.Column("request_id", sa.Text, sa.ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.CheckConstraint("kind IN ('user', 'group')", name="ck_kind"),
    sa.Index("ix_request_assignees_name", "kind", "name"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("ts", Timestamp, nullable=False),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("fields", Json, nullable=False),
    _check("level", LogLevel),
    sa.Index("ix_logs_run", "run_id", "id"),
)

# -- 0002: identity, tenancy and workflow drafts -------------------------------------------------------------
workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("slug", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("email", name="uq_users_email"),
)

members = sa.Table(
    "members",
    metadata,
    sa.Column("workspace", sa.Text, sa.ForeignKey("workspaces.slug", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    _check("role", Role),
    sa.Index("ix_members_user", "user_id"),
)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("workspace", sa.Text, sa.ForeignKey("workspaces.slug", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column("workspace", sa.Text, primary_key=True),
    sa.Column("group_name", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.ForeignKeyConstraint(
        ["workspace", "group_name"], ["groups.workspace", "groups.name"], ondelete="CASCADE", onupdate="CASCADE"
    ),
    sa.Index("ix_group_members_user", "user_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("workspace", sa.Text, sa.ForeignKey("workspaces.slug", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp, nullable=True),
    _check("role", Role),
    sa.Index("ix_api_keys_workspace", "workspace"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("csrf_token", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Index("ix_sessions_expires", "expires_at"),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("workspace", sa.Text, sa.ForeignKey("workspaces.slug", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("files", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("webhook_id", sa.Text, nullable=True),
    sa.Column("webhook_token_hash", sa.Text, nullable=True),
    sa.Column("webhook_hmac_secret", sa.Text, nullable=True),
    sa.Column("schedule_cron", sa.Text, nullable=True),
    sa.Column("schedule_timezone", sa.Text, nullable=True),
    sa.Column("schedule_data", Json, nullable=True),
    sa.Column("schedule_enabled", sa.Boolean, nullable=False),
    sa.Column("schedule_next_at", Timestamp, nullable=True),
    sa.UniqueConstraint("webhook_id", name="uq_workflows_webhook_id"),
    sa.Index(
        "ix_workflows_schedule_due",
        "schedule_next_at",
        sqlite_where=sa.text("schedule_enabled AND schedule_next_at IS NOT NULL"),
        postgresql_where=sa.text("schedule_enabled AND schedule_next_at IS NOT NULL"),
    ),
)

# -- 0003: datasources ----------------------------------------------------------------------------------------
datasources = sa.Table(
    "datasources",
    metadata,
    sa.Column("workspace", sa.Text, sa.ForeignKey("workspaces.slug", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("config", Json, nullable=False),
    sa.Column("secrets", sa.Text, nullable=True),  # sealed JSON object (loomwork.sealing), never plain
    sa.Column("secret_names", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)
