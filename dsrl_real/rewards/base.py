"""The reward-backend protocol: score a finished episode, or an episode prefix, from its frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..tasks import TaskStatus

EPISODE_SCORE, PROGRESS, SUCCESS = "episode_score", "progress", "success"


@dataclass(frozen=True)
class EpisodeClip:
    """What a backend sees: the frames since the (stage's) start and the instruction."""

    frames: dict[str, np.ndarray]  # camera name -> (T, H, W, 3) uint8
    instruction: str
    fps: float
    truth: tuple[TaskStatus, ...] = ()  # simulation only: ground truth per frame


@dataclass(frozen=True)
class EpisodeScore:
    reward: float  # in [0, 1]
    success: bool
    score: float | None = None  # on the backend's own scale (RoboReward: 1-5), if it has one
    raw: Any = None  # the backend's raw output, kept for the record
    valid: bool = True  # False: the backend's output could not be read (reward 0.0, success False, score None)


@dataclass(frozen=True)
class ProgressScore:
    progress: np.ndarray  # per frame, in [0, 1]
    success_prob: float
    raw: Any = None


@runtime_checkable
class RewardBackend(Protocol):
    name: str
    offers: frozenset[str]  # which of EPISODE_SCORE, PROGRESS, SUCCESS the backend provides

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore: ...

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore: ...


@dataclass
class SimTruthBackend:
    """Simulator ground truth: sparse success at the end of the episode, progress per frame."""

    name: str = "sim_truth"
    offers: frozenset[str] = field(default_factory=lambda: frozenset({EPISODE_SCORE, PROGRESS, SUCCESS}))

    def score_episode(self, clip: EpisodeClip) -> EpisodeScore:
        final = self._truth(clip)[-1]
        return EpisodeScore(reward=float(final.success), success=final.success, score=1 + 4 * final.progress,
                            raw={"progress": final.progress, "stage": final.stage})

    def score_prefix(self, clip: EpisodeClip) -> ProgressScore:
        truth = self._truth(clip)
        return ProgressScore(np.array([s.progress for s in truth], np.float32), float(truth[-1].success))

    @staticmethod
    def _truth(clip: EpisodeClip) -> tuple[TaskStatus, ...]:
        if not clip.truth:
            raise ValueError("The sim_truth reward backend needs simulator ground truth; use it with robot.kind=sim.")
        return clip.truth
