"""A reward backend with injected label noise, for testing audits and robustness to a bad reward.

`NoisyBackend(inner, false_positive_rate=0.2, score_error_rate=0.25)` scores an episode with
`inner`, then
- flips a failure to success with probability `false_positive_rate` (the way reward models
  over-reward failed attempts) and a success to failure with probability `false_negative_rate`;
- puts the score on RoboReward's integer 1-5 scale (rounded) and, with probability
  `score_error_rate`, moves it by `score_error` points toward the far end of the scale (up from
  1-3, down from 4-5), which never leaves the scale: with `score_error=2` the expected absolute
  error against the rounded inner score is exactly `2 * score_error_rate`.
The reward is the (noisy) success, as the sparse success reward. Draws come from one seeded
stream, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import EPISODE_SCORE, EpisodeClip, EpisodeScore, ProgressScore, RewardBackend


@dataclass
class NoisyBackend:
    inner: RewardBackend
    false_positive_rate: float = 0.0
    false_negative_rate: float = 0.0
    score_error_rate: float = 0.0
    score_error: int = 2
    seed: int = 0
    name: str = ""
    offers: frozenset[str] = field(default_factory=lambda: frozenset({EPISODE_SCORE}))

    def __post_init__(self) -> None:
        for key in ("false_positive_rate", "false_negative_rate", "score_error_rate"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"NoisyBackend {key} must lie in [0, 1], got {getattr(self, key)}.")
        if not 0 <= self.score_error <= 2:
            raise ValueError(f"NoisyBackend score_error must be 0, 1 or 2 points to stay on the 1-5 scale, got {self.score_error}.")
        self.name = self.name or f"{self.inner.name}_noisy"
        self.offers = frozenset({EPISODE_SCORE}) & frozenset(self.inner.offers) or frozenset({EPISODE_SCORE})
        self._rng = np.random.default_rng(self.seed)

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        clean = self.inner.score_episode(clip)
        flip_rate = self.false_negative_rate if clean.success else self.false_positive_rate
        flipped = bool(self._rng.random() < flip_rate)
        success = clean.success != flipped
        score = None
        moved = bool(self._rng.random() < self.score_error_rate)
        if clean.score is not None:
            score = int(np.clip(np.rint(clean.score), 1, 5))
            if moved:
                score = score + self.score_error if score <= 3 else score - self.score_error
        raw = {"inner": clean.raw, "inner_score": clean.score, "inner_success": clean.success,
               "success_flipped": flipped, "score_moved": moved}
        return EpisodeScore(reward=float(success), success=success, score=score, raw=raw)

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        raise NotImplementedError(f"The {self.name} backend scores whole episodes only; use it as an end-of-episode (shadow) backend.")
