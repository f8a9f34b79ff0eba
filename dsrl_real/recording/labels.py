"""Episode labels from any number of reward backends (the human's included), as plain dicts:
`{"score": 1-5 or None, "success": bool, "reward": float, "valid": bool, "raw": ...}`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..rewards.base import EpisodeClip, RewardBackend
from ..rewards.scoring import HUMAN_BACKENDS, ScoredEpisode
from .layout import jsonable

HUMAN_LABEL = "human"


def score_label(score: Any) -> dict[str, Any]:
    """An `EpisodeScore` (or a label dict) as the label dict the recorder stores."""
    if isinstance(score, dict):
        label = dict(score)
    else:
        label = {"score": getattr(score, "score", None), "success": getattr(score, "success", None),
                 "reward": getattr(score, "reward", None), "raw": getattr(score, "raw", None)}
        label["valid"] = bool(getattr(score, "valid", True))
    label.setdefault("valid", True)
    return jsonable(label)


def shadow_labels(backends: Iterable[RewardBackend], clip: EpisodeClip) -> dict[str, dict[str, Any]]:
    """Every backend's label for one episode. A backend that fails is recorded as an invalid label
    with its error, so one broken shadow backend never stops a run or loses the episode."""
    labels: dict[str, dict[str, Any]] = {}
    for backend in backends:
        try:
            labels[backend.name] = score_label(backend.score_episode(clip))
        except Exception as err:  # noqa: BLE001 - recorded, not hidden
            labels[backend.name] = {"score": None, "success": None, "reward": None, "valid": False,
                                    "error": f"{type(err).__name__}: {err}"}
    return labels


def label_name(backend: RewardBackend) -> str:
    """The key of a backend's label in the recording: "human" for the human oracle (keyboard or simulated)."""
    return HUMAN_LABEL if backend.name in HUMAN_BACKENDS else backend.name


def episode_label(scored: ScoredEpisode) -> dict[str, Any]:
    """The primary backend's label of an episode; with dense rewards also its progress per frame,
    so that a later run can re-shape the episode's rewards (train.seed_runs)."""
    label = score_label(scored.score)
    if scored.progress is not None:
        label["progress"] = [float(p) for p in scored.progress]
    return label


def invalid_label(err: BaseException) -> dict[str, Any]:
    return {"score": None, "success": None, "reward": None, "valid": False, "error": f"{type(err).__name__}: {err}"}
