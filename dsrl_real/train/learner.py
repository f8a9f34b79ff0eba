"""The trainer's learner: one worker thread for the whole run, doing one cycle at a time.

A cycle absorbs the episode that just finished (waits for its whole-episode score, puts it in the
replay buffer), runs its gradient steps (JAX releases the GIL) and writes a checkpoint when one is
due, while the control loop resets the scene. `join()` waits for the cycle in progress: the trainer
before its next episode, the ROS node before its own checkpoint after a stop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LEARNER_THREAD = "dsrl-learner"  # the worker thread's name, as a debugger or py-spy shows it


@dataclass
class Cycle:
    """What one cycle gave: its value, or the exception that ended it (surfaced by the trainer)."""

    value: Any = None
    error: BaseException | None = None


class Learner:
    def __init__(self, name: str = LEARNER_THREAD):
        self.name = name
        self._jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._busy = False
        self._last = Cycle()
        self._thread: threading.Thread | None = None

    def submit(self, cycle: Callable[[], Any]) -> None:
        """Start `cycle` on the worker thread (started on first use); the previous cycle must be joined."""
        with self._idle:
            if self._busy:
                raise RuntimeError("The learner is still busy with its previous cycle; join() it first.")
            self._busy, self._last = True, Cycle()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()
        self._jobs.put(cycle)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no cycle is in progress; False if one still is after `timeout` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    def result(self) -> Cycle:
        """The last cycle's outcome (after `join`)."""
        return self._last

    def stop(self) -> None:
        """Finish the cycle in progress, then end the worker thread (a later `submit` starts another)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (cycle := self._jobs.get()) is not None:
            outcome = Cycle()
            try:
                outcome.value = cycle()
            except BaseException as err:  # surfaced in the control loop's thread
                outcome.error = err
            with self._idle:
                self._last, self._busy = outcome, False
                self._idle.notify_all()
