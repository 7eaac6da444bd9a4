"""Domain objects as the API shows them (SPEC §4). One function per resource; nothing secret leaves here."""

from __future__ import annotations

from typing import Any

from ..model import ApiKey, ErrorInfo, Group, Member, Request, Role, Run, Step, User, Workflow, Workspace


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name, "created_at": user.created_at}


def workspace_view(workspace: Workspace, role: Role | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"slug": workspace.slug, "name": workspace.name, "created_at": workspace.created_at}
    if role is not None:
        out["role"] = role.value
    return out


def member_view(member: Member) -> dict[str, Any]:
    return {
        "email": member.user.email,
        "name": member.user.name,
        "role": member.role.value,
        "user_id": member.user.id,
    }


def group_view(group: Group) -> dict[str, Any]:
    return {"name": group.name, "members": list(group.members), "created_at": group.created_at}


def api_key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "role": key.role.value,
        "user": key.user_email,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
    }


def error_view(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def step_view(step: Step) -> dict[str, Any]:
    return {
        "seq": step.seq,
        "kind": step.kind.value,
        "name": step.name,
        "status": step.status.value,
        "input": step.input,
        "output": step.output,
        "error": error_view(step.error),
        "attempts": step.attempts,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
    }


def request_view(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "workflow": request.workflow,
        "run_id": request.run_id,
        "request_name": request.request_name,
        "message": request.message,
        "resolutions": list(request.resolutions),
        "metadata": request.metadata,
        "to_users": list(request.to_users),
        "to_groups": list(request.to_groups),
        "status": request.status.value,
        "created_at": request.created_at,
        "expires_at": request.expires_at,
        "resolution": request.resolution,
        "payload": request.payload,
        "resolved_by": request.resolved_by,
        "resolved_at": request.resolved_at,
    }


def run_view(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "version": run.version,
        "status": run.status.value,
        "trigger": run.trigger.value,
        "test": run.test,
        "input": run.input,
        "output": run.output,
        "error": error_view(run.error),
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "parent_run_id": run.parent_run_id,
        "attempts": run.attempts,
    }


def run_detail_view(run: Run, steps: list[Step], requests: list[Request]) -> dict[str, Any]:
    out = run_view(run)
    out["steps"] = [step_view(s) for s in steps]
    out["requests"] = [request_view(r) for r in requests]
    return out


def workflow_view(workflow: Workflow, *, files: bool = True, last_run_status: str | None = None) -> dict[str, Any]:
    schedule = None
    if workflow.schedule is not None:
        schedule = {
            "cron": workflow.schedule.cron,
            "timezone": workflow.schedule.timezone,
            "data": workflow.schedule.data,
            "enabled": workflow.schedule.enabled,
            "next_fire_at": workflow.schedule.next_fire_at,
        }
    out: dict[str, Any] = {
        "name": workflow.name,
        "description": workflow.description,
        "deployed_version": workflow.deployed_version,
        "webhook_enabled": workflow.webhook_id is not None,
        "webhook_hmac": workflow.hmac_enabled,
        "schedule": schedule,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
    }
    if files:
        out["files"] = workflow.files
    else:
        out["last_run_status"] = last_run_status
    return out
