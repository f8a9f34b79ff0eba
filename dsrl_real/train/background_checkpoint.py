"""learner.mode=ray: a checkpoint written beside the next episode, so that the robot does not wait for it.

At the paper's sizes the learner's part of a checkpoint is about 100 MB, which cost the robot about half a
second of standing still at every episode boundary. The trainer starts the checkpoint with the counters and
records of the moment it was asked for, and finishes it (joins it) before anything that must come after it:
the next episode sent to the learner (so the learner's snapshot holds no episode the counters do not), the
next checkpoint, the run's end, a stop, and `save_checkpoint()`. The metrics records it holds are logged
only once it is safe: `finish` hands them back with the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .learner import Learner

CHECKPOINT_THREAD = "dsrl-checkpoint"  # the worker thread's name, as a debugger or py-spy shows it


@dataclass
class Finished:
    """A background checkpoint's outcome: the metrics records it holds, and the exception that ended it, if any."""

    records: list[dict]
    error: BaseException | None


class BackgroundCheckpoint:
    def __init__(self):
        self._worker = Learner(CHECKPOINT_THREAD)
        self._records: list[dict] | None = None  # the records of the checkpoint started and not yet finished

    @property
    def pending(self) -> bool:
        """Whether a checkpoint was started and not yet finished (`finish`)."""
        return self._records is not None

    def start(self, write: Callable[[], Any], records: list[dict]) -> None:
        """Run `write` (the whole checkpoint save) on the worker thread; `records`: the metrics records it holds."""
        if self._records is not None:
            raise RuntimeError("A checkpoint is still pending; finish() it first.")
        self._records = list(records)
        self._worker.submit(write)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the checkpoint in progress is written (or failed), leaving its outcome to `finish`;
        False if it still runs after `timeout` seconds."""
        return self._worker.join(timeout)

    def finish(self) -> Finished | None:
        """Wait for the pending checkpoint and hand back its outcome once; None when none is pending."""
        if self._records is None:
            return None
        self._worker.join()
        records, self._records = self._records, None
        return Finished(records, self._worker.result().error)

    def stop(self) -> None:
        """End the worker thread, after the checkpoint in progress (a later `start` starts another)."""
        self._worker.stop()
