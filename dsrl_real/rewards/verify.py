"""Verify positives (reward.verify): a human confirms or rejects, with one key, each success the reward
backend claims, and their answer is the label training uses.

When the primary backend's end-of-episode label says success, the verifier asks: y (it did succeed) or
n (it did not), within reward.verify_timeout_s seconds (the reset time). A random share of the claimed
failures (reward.verify_failure_fraction) is asked too, s (succeeded) or f (failed), to measure the
backend's false negatives. Where the human agrees, the backend's label stands; where they overrule it,
the label becomes theirs (reward 1 or 0, no 1-5 score), so a rejected success trains as a failure. No
answer by the deadline: the backend's label stands, recorded as unverified. Other episodes ask nothing.

`Verifier` is whatever puts the question (human_verifier.py: the keyboard, and in simulation the simulated
human typing into it); `VerifyPositives` decides whom to ask and `training_score` what the answer means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .base import EpisodeScore

VERIFY_MODES = ("none", "human", "sim_human")
CLAIMED_SUCCESS, FAILURE_CHECK = "claimed_success", "failure_check"
_STREAM = 22  # the failure checks' draws: default_rng([run.seed, 22]), apart from the trainer's streams


@dataclass(frozen=True)
class VerifyRequest:
    """One question about a finished episode: `kind` is CLAIMED_SUCCESS or FAILURE_CHECK; `truth` (simulation
    only) is the simulator's state per frame, from which a simulated human answers."""

    kind: str
    instruction: str
    backend: str
    truth: tuple = ()

    @property
    def keys(self) -> str:
        """The two answers, the one meaning success first."""
        return "yn" if self.kind == CLAIMED_SUCCESS else "sf"

    def question(self) -> str:
        if self.kind == CLAIMED_SUCCESS:
            return (f"Verify: the {self.backend} reward says the robot succeeded ({self.instruction}). "
                    "Press y if it did, n if it did not.")
        return (f"Verify: the {self.backend} reward says the robot failed ({self.instruction}). "
                "Press s if it succeeded, f if it failed.")

    def retry(self) -> str:
        return "press y or n." if self.kind == CLAIMED_SUCCESS else "press s or f."


@runtime_checkable
class Verifier(Protocol):
    name: str  # the name its answers are recorded under ("human")

    def ask(self, request: VerifyRequest, timeout_s: float) -> str | None:
        """One of `request.keys`, or None when no answer came within `timeout_s` seconds."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Verification:
    """What the verifier was asked about one episode and what it said."""

    asked: str | None = None  # CLAIMED_SUCCESS, FAILURE_CHECK, or None: not asked
    answer: str | None = None  # the key; None: not asked, or no answer by the deadline
    seconds: float | None = None  # how long the answer took

    @property
    def verified(self) -> bool | None:
        """True: the human answered; False: asked, no answer by the deadline; None: not asked."""
        return None if self.asked is None else self.answer is not None

    @property
    def success(self) -> bool | None:
        """The human's call (None without an answer)."""
        return None if self.answer is None else self.answer in ("y", "s")

    def fields(self) -> dict:
        """As the recording's training label and metrics.jsonl carry it."""
        return {"verify": self.asked, "answer": self.answer, "verified": self.verified}


class VerifyPositives:
    """Asks `verifier` about each claimed success and a `failure_fraction` of the claimed failures (drawn from
    a stream seeded with `seed`), allowing it `timeout_s` seconds per answer."""

    def __init__(self, verifier: Verifier, timeout_s: float, failure_fraction: float = 0.0, seed: int = 0):
        if not timeout_s > 0:
            raise ValueError(f"The verify timeout must be positive seconds, got {timeout_s}.")
        if not 0.0 <= failure_fraction <= 1.0:
            raise ValueError(f"The share of claimed failures to verify must lie in [0, 1], got {failure_fraction}.")
        self.verifier, self.timeout_s, self.failure_fraction = verifier, timeout_s, failure_fraction
        self._rng = np.random.default_rng([seed, _STREAM])

    @property
    def name(self) -> str:
        return self.verifier.name

    def check(self, claim: EpisodeScore, instruction: str, backend: str, truth: tuple = ()) -> Verification:
        """Ask about `claim` (the backend's label) if it is a success or drawn for a failure check."""
        if claim.success:
            kind = CLAIMED_SUCCESS
        elif self.failure_fraction > 0 and self._rng.random() < self.failure_fraction:
            kind = FAILURE_CHECK
        else:
            return Verification()
        start = time.monotonic()
        answer = self.verifier.ask(VerifyRequest(kind, instruction, backend, tuple(truth)), self.timeout_s)
        return Verification(kind, answer, None if answer is None else round(time.monotonic() - start, 3))

    def close(self) -> None:
        self.verifier.close()


def training_score(claim: EpisodeScore, verification: Verification) -> EpisodeScore:
    """The label training uses: the backend's `claim`, unless the human's answer overrules it; then the
    human's (reward 1 or 0, no 1-5 score)."""
    said = verification.success
    if said is None or said == claim.success:
        return claim
    return EpisodeScore(reward=float(said), success=said, score=None,
                        raw={"verify": verification.asked, "answer": verification.answer})


def training_flags(terminated: bool, truncated: bool, verification: Verification | None) -> tuple[bool, bool]:
    """An episode that ended on a success the human rejected trains as a failure: not terminal, truncated
    (learners bootstrap through it), as an episode the detector never ended."""
    if verification is not None and verification.success is False and terminated:
        return False, True
    return terminated, truncated
