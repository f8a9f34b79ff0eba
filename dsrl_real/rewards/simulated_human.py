"""A simulated human that answers the keyboard oracle from simulator truth by typing into its input,
so the real oracle code path (terminal, keys, prompts) runs unattended in simulation and in tests."""

from __future__ import annotations

import io
import os
from typing import TextIO

import numpy as np

from ..tasks import TaskStatus
from .keyboard import SCALES, KeyboardOracle


def progress_score(status: TaskStatus) -> int:
    """1-5 from ground truth: 1 + round(4 * progress), and 5 only on success."""
    if status.success:
        return 5
    return min(4, 1 + round(4 * float(np.clip(status.progress, 0.0, 1.0))))


class SimulatedHuman:
    """Types keys into `write_fd` (the oracle's terminal, e.g. a pty master). With `mislabel_prob` > 0 it
    gives a wrong end-of-episode answer that often (a flipped label, or a score one step off), drawn from `seed`."""

    def __init__(self, write_fd: int, scale: str = "binary", seed: int = 0, *, mislabel_prob: float = 0.0,
                 close_fd: bool = False):
        if scale not in SCALES:
            raise ValueError(f"Unknown human-oracle scale {scale!r}; choose one of {list(SCALES)}.")
        if not 0.0 <= mislabel_prob <= 1.0:
            raise ValueError(f"mislabel_prob must be in [0, 1], got {mislabel_prob}.")
        self.write_fd, self.scale, self.mislabel_prob, self._close_fd = write_fd, scale, mislabel_prob, close_fd
        self.rng = np.random.default_rng(seed)
        self._reported = False

    @classmethod
    def with_oracle(cls, scale: str = "binary", seed: int = 0, output: TextIO | None = None,
                    mislabel_prob: float = 0.0) -> tuple[KeyboardOracle, SimulatedHuman]:
        """A keyboard oracle on a fresh pseudo-terminal and the simulated human typing into it (close both)."""
        master, slave = os.openpty()
        oracle = KeyboardOracle(slave, output=output if output is not None else io.StringIO(), scale=scale,
                                close_fd=True)
        return oracle, cls(master, scale, seed, mislabel_prob=mislabel_prob, close_fd=True)

    def observe(self, status: TaskStatus) -> None:
        """During the episode: press the success key once, as soon as the task is done."""
        if status.success and not self._reported:
            self._type("s")
            self._reported = True

    def answer_prompt(self, final: TaskStatus) -> str:
        """At the end: type the label the oracle will ask for (ignored by it when a key already gave one)."""
        self._reported = False
        wrong = self.mislabel_prob > 0 and self.rng.random() < self.mislabel_prob
        if self.scale == "binary":
            key = "s" if final.success != wrong else "f"
        else:
            score = progress_score(final)
            if wrong:
                score += 1 if score == 1 or (score < 5 and self.rng.random() < 0.5) else -1
            key = str(score)
        self._type(key)
        return key

    def answer_verify(self, final: TaskStatus, keys: str = "yn") -> str:
        """Verify-positives: type the first of `keys` (y, s) if the task succeeded, else the second (n, f);
        with `mislabel_prob`, the other one that often."""
        wrong = self.mislabel_prob > 0 and self.rng.random() < self.mislabel_prob
        key = keys[0] if final.success != wrong else keys[1]
        self._type(key)
        return key

    def close(self) -> None:
        if self._close_fd:
            self._close_fd = False
            os.close(self.write_fd)

    def _type(self, keys: str) -> None:
        os.write(self.write_fd, keys.encode())
