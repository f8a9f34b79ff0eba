"""Verify positives (reward.verify): a human confirms or rejects, with one key, each success the reward
backend claims, and their answer is the label training uses.

When the primary backend's end-of-episode label says success, the verifier asks: y (it did succeed) or
n (it did not), within reward.verify_timeout_s seconds (the reset time). A random share of the claimed
failures (reward.verify_failure_fraction) is asked too, s (succeeded) or f (failed), to measure the
backend's false negatives. Where the human agrees, the backend's label stands; where they overrule it,
the label becomes theirs (reward 1 or 0, no 1-5 score), so a rejected success trains as a failure. No
answer by the deadline: the backend's label stands, recorded as unverified. Other episodes ask nothing.

Once the agent is good, most episodes are claimed successes, and asking about each costs the human almost as
much as labelling every episode. reward.verify_clearance > 0 asks by Dodge's continuous sampling plan CSP-1
(`SamplingPlan`): every claim until that many in a row are confirmed, then a random reward.verify_sample_fraction
of them, back to every claim at the first rejection. So the human checks everything while the model is fooled
often (early in training, or when the agent finds a near miss the model calls a success) and spot-checks while
its claims hold. A claim left unasked keeps the backend's label, recorded as not asked.

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
REJECTED = "n"  # the answer to a claimed success that says it did not succeed
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


class SamplingPlan:
    """Which claimed successes to ask about: CSP-1 (Dodge 1943) with clearance number `clearance` and sampling
    fraction `fraction`; clearance 0 asks about every one."""

    def __init__(self, clearance: int = 0, fraction: float = 1.0):
        if clearance < 0:
            raise ValueError(f"The verify clearance must be a count of claims, 0 or more, got {clearance}.")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"The share of claimed successes to spot-check must lie in (0, 1], got {fraction}.")
        self.clearance, self.fraction = clearance, fraction
        self.confirmed_in_a_row, self.sampling = 0, False

    def asks(self, rng: np.random.Generator) -> bool:
        """Ask about this claim? (A draw from `rng` only while sampling.)"""
        return not self.sampling or rng.random() < self.fraction

    def answered(self, answer: str | None) -> None:
        """The human's answer to a claim (None: none in time, which changes nothing)."""
        if self.clearance == 0 or answer is None:
            return
        if answer == REJECTED:
            self.confirmed_in_a_row, self.sampling = 0, False
        elif not self.sampling:
            self.confirmed_in_a_row += 1
            self.sampling = self.confirmed_in_a_row >= self.clearance


class VerifyPositives:
    """Asks `verifier` about the claimed successes `plan` picks (default: each) and a `failure_fraction` of the
    claimed failures (drawn from a stream seeded with `seed`), allowing it `timeout_s` seconds per answer."""

    def __init__(self, verifier: Verifier, timeout_s: float, failure_fraction: float = 0.0, seed: int = 0,
                 plan: SamplingPlan | None = None):
        if not timeout_s > 0:
            raise ValueError(f"The verify timeout must be positive seconds, got {timeout_s}.")
        if not 0.0 <= failure_fraction <= 1.0:
            raise ValueError(f"The share of claimed failures to verify must lie in [0, 1], got {failure_fraction}.")
        self.verifier, self.timeout_s, self.failure_fraction = verifier, timeout_s, failure_fraction
        self.plan = plan or SamplingPlan()
        self._rng = np.random.default_rng([seed, _STREAM])

    def resume(self, recorded: list[dict]) -> None:
        """Bring the plan to where a run's recorded verifications (Verification.fields(), in order) left it."""
        for fields in recorded:
            if fields.get("verify") == CLAIMED_SUCCESS:
                self.plan.answered(fields.get("answer"))

    @property
    def name(self) -> str:
        return self.verifier.name

    def check(self, claim: EpisodeScore, instruction: str, backend: str, truth: tuple = ()) -> Verification:
        """Ask about `claim` (the backend's label) if it is a success or drawn for a failure check."""
        if claim.success:
            if not self.plan.asks(self._rng):
                return Verification()
            kind = CLAIMED_SUCCESS
        elif self.failure_fraction > 0 and self._rng.random() < self.failure_fraction:
            kind = FAILURE_CHECK
        else:
            return Verification()
        start = time.monotonic()
        answer = self.verifier.ask(VerifyRequest(kind, instruction, backend, tuple(truth)), self.timeout_s)
        if kind == CLAIMED_SUCCESS:
            self.plan.answered(answer)
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
