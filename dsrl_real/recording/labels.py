"""Episode labels from any number of reward backends (the human's included), as plain dicts:
`{"score": 1-5 or None, "success": bool, "reward": float, "valid": bool, "raw": ...}`.

A verify-positives run (reward.verify, rewards/verify.py) records three: the backend's own label under its
name, the human's answer as "human" where they answered (raw: {"verify": "claimed_success" or
"failure_check", "answer": the key}), and "training", the label training used, which says how it came
about ("verified": true, the human answered; false, asked but no answer in time; null, not asked)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..rewards.base import EpisodeClip, RewardBackend
from ..rewards.scoring import HUMAN_BACKENDS, ScoredEpisode
from ..rewards.verify import training_flags
from .layout import jsonable

HUMAN_LABEL = "human"
TRAINING_LABEL = "training"  # verify-positives runs: the label training used


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


def verified_labels(scored: ScoredEpisode, backend: str, terminated: bool, truncated: bool) -> dict[str, dict[str, Any]]:
    """A verify-positives episode's labels: the backend's claim (named `backend`), the human's answer (if any)
    and the training label, with the episode's end flags as it trained (`terminated`, `truncated`: as it ended)."""
    v = scored.verification
    labels = {backend: score_label(scored.claim)}
    if v.success is not None:
        labels[HUMAN_LABEL] = {"score": None, "success": v.success, "reward": float(v.success), "valid": True,
                               "raw": {"verify": v.asked, "answer": v.answer, "seconds": v.seconds}}
    terminated, truncated = training_flags(terminated, truncated, v)
    labels[TRAINING_LABEL] = {**score_label(scored.score), **v.fields(), "backend": backend,
                              "terminated": terminated, "truncated": truncated}
    return labels


def invalid_label(err: BaseException) -> dict[str, Any]:
    return {"score": None, "success": None, "reward": None, "valid": False, "error": f"{type(err).__name__}: {err}"}
