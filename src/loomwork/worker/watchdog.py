"""The CPU limit: workflow code that runs too long without yielding is interrupted with an exception.

Workflow bodies run on the worker's one event loop, so a body that never awaits (``while True: pass``) would
stall every run in the process. A watchdog thread notices when the same run has held the loop longer than the
limit and interrupts the main thread with a signal; the handler raises :class:`ResourceLimitExceeded` inside the
workflow code, which fails that run alone. Code stuck in C (no bytecode runs) is not interruptible this way;
the engine's run time limit still ends such a run.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from ..errors import ResourceLimitExceeded


class Watchdog:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._run_id: str | None = None
        self._since = 0.0
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._fired_for: str | None = None
        signal.signal(signal.SIGUSR1, self._interrupt)
        self._thread = threading.Thread(target=self._watch, name="loomwork-watchdog", daemon=True)
        self._thread.start()

    def enter(self, run_id: str) -> None:
        self._since = time.monotonic()
        self._run_id = run_id

    def leave(self) -> None:
        self._run_id = None

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        interval = min(0.5, self.limit / 4)
        while not self._stop.wait(interval):
            run_id = self._run_id
            if run_id is not None and time.monotonic() - self._since > self.limit and self._fired_for != run_id:
                self._fired_for = run_id
                if self._main is not None:
                    signal.pthread_kill(self._main, signal.SIGUSR1)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self._run_id is not None and self._run_id == self._fired_for:
            raise ResourceLimitExceeded(
                f"workflow code ran for more than {self.limit:g} s without awaiting anything (CPU time limit); "
                "move heavy work into a wf.step function"
            )
