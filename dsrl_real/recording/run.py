"""What the DSRL trainer writes about every episode it runs into its run folder (train.out_dir).

Warm-start, training and evaluation episodes (and the trials of `dsrl-real eval`) go into the run
folder through `RunRecorder`, as a LeRobot v3.0 dataset, one row per env step while the episode
runs (rows.py); camera frames go to the videos; a last row holds the final observation.

Labels arrive later than the episode: it is sealed with its outcome the moment it ends, before any
backend scores it, and each backend's label is added with `update_labels` by the thread that
finished computing it (the reward worker, or the caller when the score was inline). So the control
loop never waits for a label, and a crash or Ctrl-C while an episode is being scored loses no step
of it, only the labels not yet computed. The label of the primary backend (reward.backend) is the
score the trainer rewarded; the human oracle's, keyboard or simulated, is always named "human",
which `dsrl-real audit` compares the others against. Evaluation episodes carry their outcome and
the shadow backends' labels only: the primary backend scores just the episodes it rewards
(shadow backends: shadows.py; earlier runs into the replay buffer: seeding.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError
from ..runlock import RunLock
from .labels import invalid_label
from .layout import RecordingError
from .writer import EpisodeRecording, RunRecorder

log = logging.getLogger("dsrl_real.train.trainer")


def run_meta(cfg: Config, label: str, algorithm: str, shadows: Sequence[str], chunk_size: int) -> dict[str, Any]:
    """meta/run.json's caller part: what produced the episodes."""
    return {"robot_type": "franka" if cfg.robot.kind == "franka" else cfg.robot.robot_model, "robot_kind": cfg.robot.kind,
            "task": cfg.task.name, "reward_backend": cfg.reward.backend, "reward_label": label, "reward_form": cfg.reward.form,
            "shadow": list(shadows), "algorithm": algorithm, "chunk_size": chunk_size, "seed": cfg.run.seed,
            "verify": cfg.reward.verify}


class RunRecording:
    """The trainer's `RunRecorder`, with labels written when they arrive, from any thread; `run_lock`:
    the trainer's hold on the run folder, which the recorder shares (one writer per folder)."""

    def __init__(self, run_dir: str | Path, cameras: list[str], fps: float, meta: dict, run_lock: RunLock | None = None):
        try:
            self.recorder = RunRecorder(run_dir, cameras, fps, meta, run_lock=run_lock)
        except RecordingError as err:
            raise ConfigError(str(err)) from err
        self._lock = threading.Lock()  # the recorder's episode list changes in one thread at a time
        self._pending = threading.Condition()
        self._outstanding = 0

    @contextlib.contextmanager
    def episode(self, kind: str, seed: int | None, instruction: str) -> Iterator[EpisodeRecording]:
        """An episode being recorded; an exception (Ctrl-C included) seals what was recorded as partial."""
        with self._lock:
            recording = self.recorder.begin_episode(kind, seed, instruction)
        reason = "left unfinished"
        try:
            yield recording
        except BaseException as err:
            reason = type(err).__name__
            raise
        finally:
            with self._lock:
                recording.abort(reason)  # no-op once finished

    def finish(self, recording: EpisodeRecording, success: bool, terminated: bool, truncated: bool, **extra: Any) -> int:
        """Seal the episode with its outcome (labels come later); returns its episode index."""
        with self._lock:
            return recording.finish(success, terminated, truncated, labels={}, **extra)["episode_index"]

    def label_when_done(self, index: int, name: str, future: Future,
                        to_label: Callable[[Any], dict] = lambda label: label) -> None:
        """Add `name`'s label to sealed episode `index` once `future` completes (at once if it has);
        a score that failed is recorded as an invalid label with its error."""
        self.labels_when_done(index, name, future, lambda result: {name: to_label(result)})

    def labels_when_done(self, index: int, name: str, future: Future, to_labels: Callable[[Any], dict[str, dict]]) -> None:
        """As `label_when_done`, for several labels from one result (`to_labels`: name -> label); a score
        that failed is recorded as `name`'s invalid label."""
        with self._pending:
            self._outstanding += 1

        def write(done: Future) -> None:
            try:
                try:
                    labels = to_labels(done.result())
                except BaseException as err:  # noqa: BLE001 - the trainer raises it; the record keeps it
                    labels = {name: invalid_label(err)}
                with self._lock:
                    self.recorder.update_labels(index, labels)
            except Exception as err:  # noqa: BLE001 - a scoring worker must survive a failed write
                log.error(f"Could not write the {name} label of recorded episode {index} into {self.recorder.run_dir} ({err}).")
            finally:
                with self._pending:
                    self._outstanding -= 1
                    self._pending.notify_all()

        future.add_done_callback(write)

    def wait_for_labels(self, timeout: float | None = None) -> bool:
        """Wait until every label asked for has been written; False on timeout."""
        with self._pending:
            return self._pending.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self) -> None:
        """Write the labels still being computed, then release the run folder."""
        try:
            self.wait_for_labels()
        finally:
            with self._lock:
                self.recorder.close()
