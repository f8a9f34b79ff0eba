"""A faithful stand-in for a flawed reward model (backend `sim_reward_model`): simulator truth whose false
positives cluster on the episodes that almost succeeded, as a learned reward model's do.

The closeness of a failed episode is the simulated human's 1-5 progress score of its final state
(`progress_score`: 1 + round(4 * progress), at most 4 without success; on the monkey task 1-3 is not
grasped or barely, 4 carried most of the way, still held or dropped beside the towel: the near miss;
the simulator's progress keeps a carry that was let go, sim/tabletop.py). For each episode, from one
seeded stream:
- a failure of closeness s is called a success, score 5, with probability `false_positive_by_score[s - 1]`;
- a success is called a failure, score 4, with probability `false_negative_rate`;
- a failure it calls a failure reports its closeness moved one point with probability `score_error_rate`,
  staying on 1-4 (up from 1, down from 4, either way from 2 and 3): a move across the success line would
  be a false positive or negative, which have their own rates. A success it calls a success scores 5.
The reward is the label's success (sparse). Every episode draws the same three numbers from the stream
whatever its outcome, so a run is repeatable.

`StandInParams.from_config` reads the rates from reward.stand_in_*; with reward.stand_in_from_audit
they are replayed from an audit.json that `dsrl-real audit` wrote (a robot run's measured reward
errors): the false-positive rate by the reference's score, the false-negative rate, and the
score error rate (the share of the episodes both call failures whose 1-5 scores differ). A figure
the audit lacks (no failures at some score, a binary reference) keeps its configured value; each
label's raw names those that were measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, RewardConfig
from .base import EPISODE_SCORE, EpisodeClip, EpisodeScore, ProgressScore
from .simulated_human import progress_score

NAME = "sim_reward_model"
FAILURE_SCORES = (1, 2, 3, 4)  # the closeness scores of a failed episode
AUDIT_FIGURE = "false_positive_by_reference_score"  # written per backend by analysis/audit.py


@dataclass(frozen=True)
class StandInParams:
    false_positive_by_score: tuple[float, ...]  # P(called success | failure of closeness 1, 2, 3, 4)
    false_negative_rate: float = 0.0
    score_error_rate: float = 0.0
    measured: tuple[str, ...] = ()  # the figures read from an audit (see `from_audit`)

    def __post_init__(self) -> None:
        if len(self.false_positive_by_score) != len(FAILURE_SCORES):
            raise ValueError(f"false_positive_by_score needs 4 probabilities (closeness 1-4), got {len(self.false_positive_by_score)}.")
        rates = {**{f"false_positive_by_score[{i}]": p for i, p in enumerate(self.false_positive_by_score)},
                 "false_negative_rate": self.false_negative_rate, "score_error_rate": self.score_error_rate}
        for key, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"The stand-in's {key} must lie in [0, 1], got {value}.")

    @classmethod
    def from_config(cls, r: RewardConfig) -> StandInParams:
        """reward.stand_in_*: absolute false-positive rates by closeness, or near-miss rate x shape; then the audit's figures."""
        by_score = r.stand_in_false_positive_by_score or [r.stand_in_near_miss_rate * w for w in r.stand_in_false_positive_shape]
        params = cls(tuple(float(p) for p in by_score), r.stand_in_false_negative_rate, r.stand_in_score_error_rate)
        if r.stand_in_from_audit:
            params = params.from_audit(r.stand_in_from_audit, r.stand_in_audit_backend)
        return params

    def from_audit(self, path: str | Path, backend: str = "") -> StandInParams:
        """These parameters with each figure the audit measured for `backend` (default: its only one) in their place."""
        figures = read_audit(path, backend)
        by_score, false_negative_rate, measured = list(self.false_positive_by_score), self.false_negative_rate, []
        for s in FAILURE_SCORES:
            fp = (figures.get(AUDIT_FIGURE) or {}).get(str(s)) or {}
            if fp.get("n"):  # the human failed some episodes at this score
                by_score[s - 1] = _rate(fp.get("value"), f"{AUDIT_FIGURE}[{s}]", path)
                measured.append(f"false_positive_at_score_{s}")
        fn = figures.get("false_negative_rate") or {}
        if fn.get("n"):
            false_negative_rate = _rate(fn.get("value"), "false_negative_rate", path)
            measured.append("false_negative_rate")
        moved = score_error_rate(figures.get("confusion"))
        if moved is not None:
            measured.append("score_error_rate")
        return StandInParams(tuple(by_score), false_negative_rate, self.score_error_rate if moved is None else moved,
                             tuple(sorted(measured)))


def _rate(value: Any, what: str, path: str | Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"The audit '{path}' gives {what} = {value!r}, which is not a rate in [0, 1]; rerun "
                          "`dsrl-real audit` on the run to rewrite it.")
    return float(value)


def score_error_rate(confusion: dict | None) -> float | None:
    """From an audit's confusion matrix on the 1-5 scale (reference rows, backend columns): the share of the
    episodes both call failures (1-4) whose scores differ; None without such episodes or without 1-5 scores."""
    if not confusion or confusion.get("reference") != "score" or confusion.get("backend") != "score":
        return None
    rows, columns = confusion["rows"], confusion["columns"]
    counts = np.asarray(confusion["counts"], float)[[rows.index(s) for s in FAILURE_SCORES]][:, [columns.index(s) for s in FAILURE_SCORES]]
    total = counts.sum()
    return float(1.0 - np.trace(counts) / total) if total else None


def read_audit(path: str | Path, backend: str = "") -> dict[str, Any]:
    """One backend's figures from an audit.json (or a folder holding one); `backend` may be left empty when it audits one."""
    file = Path(path) / "audit.json" if Path(path).is_dir() else Path(path)
    what = f"reward.stand_in_from_audit = '{path}'"
    if not file.is_file():
        raise ConfigError(f"{what} is no file; give the audit.json that `dsrl-real audit RUN` wrote (in the run's folder "
                          "or its --out folder), or leave it empty to use the reward.stand_in_* rates.")
    try:
        result = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{what} is not readable as JSON ({type(err).__name__}); give the audit.json that "
                          "`dsrl-real audit RUN` wrote.") from err
    backends = result.get("backends") if isinstance(result, dict) else None
    if not isinstance(backends, dict) or not backends or not all(isinstance(v, dict) for v in backends.values()):
        raise ConfigError(f"{what} holds no audited backends; give the audit.json that `dsrl-real audit RUN` wrote.")
    names = ", ".join(backends)
    if not backend:
        if len(backends) > 1:
            raise ConfigError(f"{what} audits {len(backends)} backends ({names}); set reward.stand_in_audit_backend to the "
                              "one whose errors to replay.")
        backend = next(iter(backends))
    if backend not in backends:
        raise ConfigError(f"reward.stand_in_audit_backend = '{backend}' is not in the audit '{path}'; it audits: {names}.")
    return backends[backend]


@dataclass
class SimRewardModelBackend:
    params: StandInParams
    seed: int = 0
    name: str = NAME
    offers: frozenset[str] = field(default_factory=lambda: frozenset({EPISODE_SCORE}))

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        if not clip.truth:
            raise ValueError(f"The {self.name} reward backend needs simulator ground truth; use it with robot.kind=sim.")
        final = clip.truth[-1]
        flip, move, up = self._rng.random(3)
        closeness = progress_score(final)
        p_false_positive = None if final.success else self.params.false_positive_by_score[closeness - 1]
        flipped = bool(flip < (self.params.false_negative_rate if final.success else p_false_positive))
        success = final.success != flipped
        moved = not success and not flipped and bool(move < self.params.score_error_rate)
        if flipped:
            score = 5 if success else 4
        elif moved:
            score = closeness + (1 if closeness == 1 or (closeness < 4 and up < 0.5) else -1)
        else:
            score = closeness
        raw = {"truth_success": bool(final.success), "truth_score": 1 + 4 * float(final.progress), "closeness_score": closeness,
               "p_false_positive": p_false_positive, "flipped": flipped, "score_moved": moved,
               "measured": list(self.params.measured)}
        return EpisodeScore(reward=float(success), success=success, score=score, raw=raw)

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        raise NotImplementedError(f"The {self.name} backend scores whole episodes only; use it with reward.form=sparse.")

