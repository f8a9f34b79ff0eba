"""learner.mode=ray when the learner goes away mid-run, and when it comes back.

The recording is the durable record. When a call to the learner fails (it died, or missed a deadline), the
robot has already finished its episode; one sentence says what it does next (learner.on_loss): it goes on
with the parameters it has, or it holds in its start pose until the learner is back, at most
learner.wait_s. Meanwhile its episodes are recorded only, and no checkpoint is written (the learner holds
the agent's training state and the buffer): their metrics records wait for the next checkpoint.

When the learner is back (the one running under the run's name, or one this side starts: learner.spawn),
it is first restored from the run's newest checkpoint if it holds fewer episodes than that (a fresh one
holds none), then sent, in order, every training episode of the recording it has not acknowledged. Its
acknowledged sequence numbers are part of its checkpoint and it never counts one twice, so nothing is
lost and nothing is counted twice. An episode whose reward label is not in the recording yet holds the
rest back until the next try; until all are in, the learner counts as away.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..config import LearnerConfig
from . import checkpoints
from .learner_link import LearnerError, LearnerLink, LearnerLost

log = logging.getLogger("dsrl_real.train.recovery")


class LearnerRecovery:
    """`recorded(numbers)`: the run's recorded training episodes as (number, the learner's arrays, or None while
    its label is on the way), None when the run is not recorded; `reseed()` sends train.seed_runs again (to a
    fresh learner when no checkpoint holds them); `wait_for_labels(timeout)` waits for the labels being written."""

    def __init__(self, cfg: LearnerConfig, link: LearnerLink, out_dir: Path,
                 recorded: Callable[[list[int]], Iterable[tuple[int, dict[str, Any] | None]]] | None,
                 reseed: Callable[[], Any], wait_for_labels: Callable[[float], bool]):
        self.cfg, self.link, self.out_dir = cfg, link, Path(out_dir)
        self.recorded, self.reseed, self.wait_for_labels = recorded, reseed, wait_for_labels
        self.behind = False  # reached again, but not yet sent every episode it had not acknowledged
        self._resumed_from = ""  # what the learner taken back resumed from, for the sentence saying it is back
        self._taken: list[int] = []

    @property
    def away(self) -> bool:
        """Whether the learner cannot take the next episode now (lost, or still catching up)."""
        return self.link.lost is not None or self.behind

    def lost(self, err: LearnerLost, episode: int) -> None:
        """Say, in one sentence, what the robot does now that the learner is gone (noticed with `episode`)."""
        if self.recorded is None:
            raise LearnerError(f"The learner is gone ({err.reason}) and with train.record=false no recording keeps the episodes "
                               "it would miss; run again with --resume to continue from the last checkpoint.") from err
        if self.cfg.on_loss == "pause":
            log.warning(f"The learner is gone ({err.reason}) after episode {episode}; the robot holds in its start pose until "
                        f"the learner is back, at most learner.wait_s={self.cfg.wait_s:g} s (learner.on_loss=pause).")
        else:
            log.warning(f"The learner is gone ({err.reason}) after episode {episode}; the robot goes on with the parameters it "
                        "has (learner.on_loss=continue) and the learner takes in the episodes recorded meanwhile when it is back.")

    def gone(self) -> LearnerError:
        """The error ending a run whose learner did not come back within learner.wait_s."""
        return LearnerError(f"The learner was not back within learner.wait_s={self.cfg.wait_s:g} s; the robot stopped in its start "
                            "pose: start the learner, then run again with --resume to continue from the last checkpoint.")

    def take_back(self, upto: int, wait_s: float = 0.0) -> bool:
        """Reach the learner (waiting at most `wait_s` for it and for the labels being written) and send it every
        recorded training episode numbered 1..`upto` it has not acknowledged; True once it holds them all."""
        deadline = time.monotonic() + wait_s
        try:
            if self.link.lost is not None:
                if not self.link.reconnect(wait_s):
                    return False
                self.behind, self._taken = True, []
                self._resumed_from = self._restore()
            if wait_s > 0:
                self.wait_for_labels(max(0.0, deadline - time.monotonic()))
            held = set(self.link.acknowledged())
            for number, arrays in self.recorded([n for n in range(1, upto + 1) if n not in held]):
                if arrays is None:
                    return False  # its reward label is on the way: the next try sends it
                self.link.add_episode(number, -1, arrays)
                self._taken.append(number)
        except LearnerLost as err:
            self.lost(err, upto)
            return False
        self.behind = False
        taken = self._taken
        which = f" ({taken[0]}-{taken[-1]})" if len(taken) > 1 else f" ({taken[0]})" if taken else ""
        log.info(f"The learner is back: it resumed from {self._resumed_from} and took in {len(taken)} recorded "
                 f"episode{'' if len(taken) == 1 else 's'} it had not acknowledged{which}.")
        return True

    def _restore(self) -> str:
        """Restore the learner from the newest checkpoint that holds more episodes than it does; what it resumed from."""
        held = self.link.stats()["episodes"]
        for folder in checkpoints.listed(self.out_dir):
            problem = checkpoints.problem(folder)
            if problem is None:
                try:
                    counters = json.loads((folder / "counters.json").read_text())
                except (OSError, ValueError) as err:
                    problem = f"{folder.name}/counters.json cannot be loaded ({type(err).__name__})"
            if problem is None:
                if counters["episodes"] <= held:
                    return f"the {held} episodes it held"
                restored = self.link.restore(folder, counters["episodes"], counters["sample_rng"])
                if restored["problem"] is None:
                    self.link.gradient_steps = restored["gradient_steps"]
                    return f"the checkpoint {folder.name}"
                problem = restored["problem"]
            log.warning(f"The learner cannot resume from {problem}; it tries the checkpoint before.")
        if held == 0:
            self.reseed()
            return "no checkpoint"
        return f"the {held} episodes it held"
