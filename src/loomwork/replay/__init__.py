"""The replay core: deterministic, I/O-free execution of a workflow body against its journal."""

from .commands import (
    ACKED,
    CallEffect,
    Command,
    CreateRequest,
    EmitLog,
    RecordValue,
    RunStep,
    StartChild,
    StartSleep,
)
from .journal import JournalEntry
from .machine import Failed, MachineState, Outcome, RunInfo, RunMachine, Succeeded, current_machine

__all__ = [
    "ACKED",
    "CallEffect",
    "Command",
    "CreateRequest",
    "EmitLog",
    "Failed",
    "JournalEntry",
    "MachineState",
    "Outcome",
    "RecordValue",
    "RunInfo",
    "RunMachine",
    "RunStep",
    "StartChild",
    "StartSleep",
    "Succeeded",
    "current_machine",
]
