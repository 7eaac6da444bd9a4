"""Runs in execution on this node: hand them to workers, journal what comes back, answer in order.

Per run, everything the worker reports is journaled through the group-commit writer in the order it arrived,
and answers (acks, outcomes) go back only after their write committed, in that same order. Outcome order
numbers are handed out here, by the one node executing the run.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, LoomworkError, NotFound
from ..model import ErrorInfo, LogLevel, Run, RunStatus, StepKind, Trigger, WorkflowVersion
from ..store import journal, logs, requests, runs, utcnow, versions
from ..store.claims import ClaimedRun, journal_json, release_after_crash, unordered_outcomes
from ..store.rows import new_run_id, request_id_for
from .effects import EffectCall
from .links import resolve_links
from .workers import WorkerProcess

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ActiveRun:
    run: Run
    worker: WorkerProcess
    version: WorkflowVersion
    last_order: int
    effects: set[asyncio.Task[None]] = field(default_factory=set)

    def take_order(self) -> int:
        self.last_order += 1
        return self.last_order


class Dispatcher:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._db = engine.db
        self._workers: list[WorkerProcess] = []
        self._dead: set[WorkerProcess] = set()  # died, not yet replaced: nothing may be sent to them
        self._active: dict[str, ActiveRun] = {}
        self._versions: dict[int, WorkflowVersion] = {}
        self._log_buffer: list[tuple[str, datetime, LogLevel, str, dict[str, Any]]] = []
        self._log_flush_scheduled = False
        self._stopping = False

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def known_versions(self) -> set[int]:
        return set(self._versions)

    @property
    def runs_in_workers(self) -> int:
        """Runs the worker processes currently hold (waiting runs are never among them)."""
        return sum(len(w.runs) for w in self._workers)

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]

    async def start(self) -> None:
        for index in range(self._engine.config.workers):
            await self._start_worker(index)

    async def _start_worker(self, index: int) -> WorkerProcess:
        config = self._engine.config
        worker = WorkerProcess(
            index,
            self._on_message,
            self._on_exit,
            memory_limit_mb=config.worker_memory_mb,
            cpu_limit=config.run_cpu_limit,
        )
        await worker.start()
        if index < len(self._workers):
            self._dead.discard(self._workers[index])
            self._workers[index] = worker
        else:
            self._workers.append(worker)
        return worker

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(w.stop() for w in self._workers), return_exceptions=True)
        for active in list(self._active.values()):
            for task in active.effects:
                task.cancel()
        pending = [
            self._db.submit(runs.release_run, run_id, self._engine.node_id, crashed=False)
            for run_id in list(self._active)
        ]
        self._active.clear()
        self._flush_logs()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def has_live_worker(self) -> bool:
        """False while every worker process is dead and not yet replaced: claim nothing then."""
        return any(w not in self._dead for w in self._workers)

    # -- handing runs out -------------------------------------------------------------------------------------
    def dispatch(self, claimed: ClaimedRun) -> None:
        run = claimed.run
        if claimed.version is not None:
            self._versions[claimed.version.id] = claimed.version
        version = self._versions[run.version_id]
        live = [w for w in self._workers if w not in self._dead]
        if not live:  # the last worker died after the claim: hand the run back
            self._db.submit(runs.release_run, run.id, self._engine.node_id, crashed=False)
            return
        worker = min(live, key=lambda w: len(w.runs))
        if version.id not in worker.loaded_versions:
            worker.send({"t": "load", "version_id": version.id, "files": version.files})
            worker.loaded_versions.add(version.id)
        self._active[run.id] = ActiveRun(run, worker, version, claimed.last_order)
        worker.runs.add(run.id)
        worker.send(
            {
                "t": "activate",
                "run_id": run.id,
                "version_id": version.id,
                "input": run.input,
                "journal": [journal_json(step) for step in claimed.journal],
                "info": {
                    "run_id": run.id,
                    "workflow": run.workflow,
                    "workspace": run.workspace,
                    "trigger": run.trigger.value,
                    "version": run.version,
                },
            }
        )

    def _forget(self, run_id: str) -> ActiveRun | None:
        active = self._active.pop(run_id, None)
        if active is not None:
            active.worker.runs.discard(run_id)
        return active

    # -- messages from workers --------------------------------------------------------------------------------
    def _on_message(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "log":
            if message["run_id"] in self._active:
                self._buffer_log(message["run_id"], message)
            return
        active = self._active.get(message.get("run_id", ""))
        if active is None or active.worker is not worker:
            return  # a run that was cancelled, timed out or handed elsewhere meanwhile
        if kind == "update":
            self._on_update(active, message)
        elif kind == "step":
            self._on_step(active, message)

    def _on_update(self, active: ActiveRun, message: dict[str, Any]) -> None:
        run_id = active.run.id
        values: list[tuple[int, str, Any]] = []
        for command in message["cmds"]:
            kind = command["c"]
            if kind == "value":
                values.append((command["seq"], command["name"], command["value"]))
                continue
            if values:
                self._db.submit(journal.record_values, run_id, values)
                values = []
            if kind == "log":
                self._buffer_log(run_id, command)
            elif kind == "effect":
                self._start_effect(active, command)
            elif kind == "request":
                self._create_request(active, command)
            elif kind == "sleep":
                wake_at = datetime.fromisoformat(command["wake_at"])
                self._db.submit(
                    journal.start_wait,
                    run_id,
                    command["seq"],
                    StepKind.SLEEP,
                    "sleep",
                    input={"until": command["wake_at"]},
                    wake_at=wake_at,
                )
            elif kind == "child":
                self._start_child(active, command)
        if values:
            self._db.submit(journal.record_values, run_id, values)
        state = message["state"]
        if state == "busy":
            return
        self._flush_logs()
        self._forget(run_id)
        node = self._engine.node_id
        if state == "done":
            outcome = message["outcome"]
            if outcome["ok"]:
                done = self._db.submit(
                    runs.finish_run, run_id, RunStatus.SUCCEEDED, output=outcome["output"], node_id=node
                )
            else:
                error = ErrorInfo.from_json(outcome["error"])
                done = self._db.submit(runs.finish_run, run_id, RunStatus.FAILED, error=error, node_id=node)
            done.add_done_callback(self._engine.run_finished)
        elif state == "waiting":
            if message.get("last_order", 0) < active.last_order:
                # An outcome was sent that the worker had not taken when it parked: replay instead.
                self._db.submit(runs.release_run, run_id, node, crashed=False)
            else:
                self._db.submit(runs.park_run, run_id, node)
        else:  # stuck
            error = ErrorInfo(
                "WorkflowStuck",
                "the workflow awaits something that is not a wf call (an asyncio future, lock or queue that "
                "nothing will complete); durable waits must use wf.sleep, wf.assign_request or wf.run_workflow",
            )
            self._db.submit(runs.finish_run, run_id, RunStatus.FAILED, error=error, node_id=node)

    def _on_step(self, active: ActiveRun, message: dict[str, Any]) -> None:
        order = active.take_order()
        record = journal.StepRecord(
            run_id=active.run.id,
            seq=message["seq"],
            kind=StepKind.STEP,
            name=message["name"],
            ok=message["ok"],
            input=message["input"],
            result=message["result"],
            attempts=message["attempts"],
            started_at=datetime.fromisoformat(message["started_at"]),
            finished_at=datetime.fromisoformat(message["finished_at"]),
            order=order,
        )
        self._journal_outcome(active, record)

    def _journal_outcome(self, active: ActiveRun, record: journal.StepRecord) -> None:
        message = {
            "t": "outcome",
            "run_id": record.run_id,
            "seq": record.seq,
            "order": record.order,
            "ok": record.ok,
            "value": record.result,
        }
        self._write_then_send(active, message, journal.record_steps, [record])

    def _write_then_send(
        self, active: ActiveRun, message: dict[str, Any], op: Any, *args: Any, if_true: bool = False
    ) -> None:
        """Journal, then answer the worker from the writer thread as soon as it committed.

        Answers leave in commit order, which is the order their outcome numbers were given in. With
        ``if_true``, the answer is sent only if the operation returned a true value.
        """

        def send(result: Any) -> None:
            if if_true and not result:
                return
            if self._active.get(active.run.id) is active:
                if message.get("t") == "ack" and message.get("ok") and "value" not in message:
                    message["value"] = result
                active.worker.send(message)

        def failed(done: asyncio.Future[Any]) -> None:
            if done.exception() is not None:
                log.error("journaling for run %s failed: %s", active.run.id, done.exception())
                self._abandon(active, "journal write failed")

        self._db.submit_then(send, op, *args).add_done_callback(failed)

    def _answer_ack(self, active: ActiveRun, seq: int, op: Any, *args: Any) -> None:
        self._write_then_send(active, {"t": "ack", "run_id": active.run.id, "seq": seq, "ok": True}, op, *args)

    def _refuse_ack(self, active: ActiveRun, seq: int, error: dict[str, Any]) -> None:
        """Answer a command with an error; through the writer, so it follows earlier answers."""
        message = {"t": "ack", "run_id": active.run.id, "seq": seq, "ok": False, "value": error}
        self._write_then_send(active, message, _nothing)

    def _abandon(self, active: ActiveRun, why: str) -> None:
        """Stop executing a run here and put it back in the queue: replay will pick up from the journal."""
        if self._forget(active.run.id) is None:
            return
        active.worker.send({"t": "drop", "run_id": active.run.id})
        log.warning("run %s handed back to the queue: %s", active.run.id, why)
        self._db.submit(runs.release_run, active.run.id, self._engine.node_id, crashed=False)

    # -- engine-side effects ----------------------------------------------------------------------------------
    def _start_effect(self, active: ActiveRun, command: dict[str, Any]) -> None:
        call = EffectCall(
            workspace=active.run.workspace,
            workflow=active.run.workflow,
            run_id=active.run.id,
            seq=command["seq"],
            kind=StepKind(command["kind"]),
            name=command["name"],
            input=command["input"],
            files=active.version.files,
        )
        task = asyncio.get_running_loop().create_task(self._run_effect(active, call))
        active.effects.add(task)
        task.add_done_callback(active.effects.discard)

    async def _run_effect(self, active: ActiveRun, call: EffectCall) -> None:
        started = utcnow()
        try:
            result: Any = await self._engine.effects.execute(call)
            ok = True
        except LoomworkError as exc:
            ok, result = False, {"type": getattr(exc, "error_type", type(exc).__name__), "message": str(exc)}
        except Exception as exc:  # an effect executor bug must fail the step, not the engine
            log.exception("effect %s of run %s failed unexpectedly", call.name, call.run_id)
            ok, result = False, {"type": type(exc).__name__, "message": str(exc)}
        if self._active.get(call.run_id) is not active:
            return
        record = journal.StepRecord(
            run_id=call.run_id,
            seq=call.seq,
            kind=call.kind,
            name=call.name,
            ok=ok,
            input=call.input,
            result=result,
            attempts=1,
            started_at=started,
            finished_at=utcnow(),
            order=active.take_order(),
        )
        self._journal_outcome(active, record)

    def _create_request(self, active: ActiveRun, command: dict[str, Any]) -> None:
        run = active.run
        spec = command["spec"]
        seq = command["seq"]
        try:
            self._engine.directory.check_assignees(run.workspace, spec["to_users"], spec["to_groups"])
        except InvalidRequest as exc:
            self._refuse_ack(active, seq, {"type": "InvalidRequest", "message": str(exc)})
            return
        expires_at = utcnow() + timedelta(seconds=spec["timeout"]) if spec.get("timeout") else None
        new = requests.NewRequest(
            workspace=run.workspace,
            workflow=run.workflow,
            run_id=run.id,
            seq=seq,
            request_name=command["name"],
            message=spec["message"],
            resolutions=spec["resolutions"],
            to_users=spec["to_users"],
            to_groups=spec["to_groups"],
            metadata=spec["metadata"],
            expires_at=expires_at,
            on_timeout=spec.get("on_timeout"),
        )
        links: dict[str, str] = {}
        if spec.get("links"):
            links = resolve_links(
                self._engine.config.public_url,
                self._engine.secret_key,
                request_id_for(run.id, seq),
                spec["resolutions"],
            )
        self._answer_ack(active, seq, requests.create_request, new, links)

    def _start_child(self, active: ActiveRun, command: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._create_child(active, command))
        active.effects.add(task)
        task.add_done_callback(active.effects.discard)

    async def _create_child(self, active: ActiveRun, command: dict[str, Any]) -> None:
        run = active.run
        seq = command["seq"]
        try:
            version = await self._db.read(versions.latest_version, run.workspace, command["workflow"])
            if version is None:
                raise NotFound(f"workflow {command['workflow']!r} has no deployed version")
            settings = self._engine.settings_of(version)
        except LoomworkError as exc:
            self._refuse_ack(active, seq, {"type": "StepError", "message": f"run_workflow: {exc}"})
            return
        if self._active.get(run.id) is not active:
            return
        child_id = new_run_id()
        new = runs.NewRun(
            workspace=run.workspace,
            workflow=command["workflow"],
            version_id=version.id,
            version=version.number,
            input=command["data"],
            trigger=Trigger.CHILD,
            test=run.test,
            parent_run_id=run.id if command["wait"] else None,
            parent_seq=seq if command["wait"] else None,
            timeout=settings.timeout,
            run_id=child_id,
        )
        self._answer_ack(active, seq, _start_child_op, new, run.id, seq, command["wait"])

    # -- outcomes arriving from elsewhere -----------------------------------------------------------------------
    def outcome_arrived(self, run_id: str) -> None:
        targets = (
            list(self._active.values()) if run_id == "*" else [self._active[run_id]] if run_id in self._active else []
        )
        for active in targets:
            task = asyncio.get_running_loop().create_task(self._deliver_arrivals(active))
            active.effects.add(task)
            task.add_done_callback(active.effects.discard)

    async def _deliver_arrivals(self, active: ActiveRun) -> None:
        arrived = await self._db.read(unordered_outcomes, active.run.id)
        for step in arrived:
            if self._active.get(active.run.id) is not active:
                return
            ok = step.error_detail is None
            message = {
                "t": "outcome",
                "run_id": active.run.id,
                "seq": step.seq,
                "order": active.take_order(),
                "ok": ok,
                "value": step.output if ok else step.error_detail,
            }
            # Another node could have delivered it first only if it held the run; the write is conditional.
            self._write_then_send(
                active, message, journal.set_order, active.run.id, step.seq, message["order"], if_true=True
            )

    def cancelled(self, run_id: str) -> None:
        if run_id == "*":
            for candidate in list(self._active):
                asyncio.get_running_loop().create_task(self._drop_if_ended(candidate))
            return
        active = self._forget(run_id)
        if active is None:
            return
        for task in active.effects:
            task.cancel()
        active.worker.send({"t": "drop", "run_id": run_id})

    async def _drop_if_ended(self, run_id: str) -> None:
        if (await self._db.read(runs.run_status, run_id)).is_final:
            self.cancelled(run_id)

    # -- logs ------------------------------------------------------------------------------------------------
    def _buffer_log(self, run_id: str, line: dict[str, Any]) -> None:
        self._log_buffer.append(
            (
                run_id,
                datetime.fromisoformat(line["ts"]),
                LogLevel(line["level"]),
                line["message"],
                line["fields"],
            )
        )
        if not self._log_flush_scheduled:
            self._log_flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_logs)

    def _flush_logs(self) -> None:
        self._log_flush_scheduled = False
        if self._log_buffer:
            lines, self._log_buffer = self._log_buffer, []
            self._db.submit(logs.append_logs, lines)

    # -- worker death ----------------------------------------------------------------------------------------
    def _on_exit(self, worker: WorkerProcess, cause: str) -> None:
        if worker.stopping or self._stopping:
            return
        self._dead.add(worker)
        log.warning("worker %s (pid %s) died: %s; its runs resume elsewhere", worker.index, worker.pid, cause)
        for run_id in list(worker.runs):
            active = self._forget(run_id)
            if active is None:
                continue
            for task in active.effects:
                task.cancel()
            self._db.submit(release_after_crash, run_id, self._engine.node_id, self._engine.config.max_crashes, cause)
        asyncio.get_running_loop().create_task(self._replace_worker(worker.index))

    async def _replace_worker(self, index: int) -> None:
        if self._stopping:
            return
        await self._start_worker(index)
        self._engine.wake_claims()


def _nothing(tx: Any) -> None:
    return None


def _start_child_op(tx: Any, new: runs.NewRun, parent_id: str, seq: int, wait: bool) -> dict[str, Any]:
    runs.create_run(tx, new)
    handle = {"run_id": new.run_id}
    if wait:
        journal.start_wait(
            tx,
            parent_id,
            seq,
            StepKind.CHILD,
            new.workflow,
            input={"workflow": new.workflow, "data": new.input, "wait": True},
            handle=handle,
        )
    else:
        journal.record_detached_child(tx, parent_id, seq, new.workflow, new.input, handle)
    return handle
