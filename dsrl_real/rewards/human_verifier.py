"""The verifiers of verify-positives (verify.py): a person at the keyboard (reward.verify=human) and, in
simulation, the simulated human typing into the keyboard oracle's pseudo-terminal (reward.verify=sim_human),
so both answer through the same terminal code: one key, with a deadline."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .keyboard import HumanEvent, KeyboardOracle
from .simulated_human import SimulatedHuman
from .verify import VerifyRequest


class KeyboardVerifier:
    """Puts the question on the keyboard oracle's terminal (default: this process's, as the human backend
    finds it). Keys typed before the question are dropped: an answer comes after its question. During the
    episodes the person at that keyboard keeps the pause and emergency-stop keys (`watch`, `poll`)."""

    name = "human"

    def __init__(self, oracle: KeyboardOracle | None = None):
        self.oracle = oracle if oracle is not None else KeyboardOracle()
        # Held while a question is open: the question (on the scoring worker) may overlap an evaluation episode
        # the control loop watches, and its answer must not be read as that episode's key.
        self._question = threading.Lock()

    def ask(self, request: VerifyRequest, timeout_s: float) -> str | None:
        with self._question:
            self.oracle.discard_typed()
            self._answer(request)
            key, _ = self.oracle.ask(request.question(), request.keys, request.retry(), timeout_s=timeout_s)
            return key

    def _answer(self, request: VerifyRequest) -> None:
        """A person answers on their own."""

    @contextmanager
    def _unless_asking(self) -> Iterator[bool]:
        """True, holding the question lock, while no question is open; False (holding nothing) while one is."""
        if not self._question.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            self._question.release()

    def watch(self, instruction: str) -> None:
        """An episode starts that the reward model labels: the person at the keyboard can pause it or stop the robot.
        While a question is open the keys typed stay for it (an emergency stop among them stops the run after it)."""
        with self._unless_asking() as free:
            self.oracle.start_episode(instruction, watch_only=True, drop_typed=free)

    def poll(self) -> HumanEvent | None:
        """Pause, resume or emergency stop typed during the watched episode, or None; never blocks, and reads
        nothing while a question is open."""
        with self._unless_asking() as free:
            return self.oracle.poll() if free else None

    def close(self) -> None:
        self.oracle.close()


class SimulatedHumanVerifier(KeyboardVerifier):
    """The simulated human answers from the simulator's final state, typing into the oracle's terminal."""

    def __init__(self, seed: int = 0, mislabel_prob: float = 0.0):
        self._output = open(os.devnull, "w")  # noqa: SIM115 - the oracle's prompts; closed in close()
        oracle, self.human = SimulatedHuman.with_oracle("binary", seed, output=self._output, mislabel_prob=mislabel_prob)
        super().__init__(oracle)

    def _answer(self, request: VerifyRequest) -> None:
        if not request.truth:
            raise ValueError("The simulated human verifies from the simulator's ground truth; use reward.verify=sim_human "
                             "with robot.kind=sim, or reward.verify=human.")
        self.human.answer_verify(request.truth[-1], request.keys)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.human.close()
            self._output.close()
