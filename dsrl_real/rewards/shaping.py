"""From a backend's scores to one reward per chunk step.

- sparse: the episode reward (the backend's end-of-episode score) on the last chunk step, 0 before.
- dense: progress deltas, progress at the chunk's last frame minus progress at its first (Robometer's
  finding: deltas train better than absolute progress). They sum to the episode's progress gain.
- step_penalty: DSRL's robomimic form, -1 per chunk step and 0 on the last one if the episode
  succeeded, so a faster success is worth more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import ConfigError
from .base import PROGRESS, EpisodeScore

FORMS = ("sparse", "dense", "step_penalty")


def check_form(form: str, offers: frozenset[str], backend: str) -> None:
    if form not in FORMS:
        raise ConfigError(f"Unknown reward.form '{form}'; choose one of: {', '.join(FORMS)}.")
    if form == "dense" and PROGRESS not in offers:
        raise ConfigError(f"reward.form=dense needs per-frame progress, which the '{backend}' backend does not give; "
                          "use reward.form=sparse or a progress backend (sim_truth, robometer).")


def sparse_rewards(num_steps: int, episode_reward: float) -> np.ndarray:
    rewards = np.zeros(num_steps, np.float32)
    rewards[-1] = episode_reward
    return rewards


def step_penalty_rewards(num_steps: int, success: bool) -> np.ndarray:
    rewards = -np.ones(num_steps, np.float32)
    rewards[-1] = 0.0 if success else -1.0
    return rewards


def progress_deltas(progress: np.ndarray, step_frames: Sequence[int]) -> np.ndarray:
    """`progress` per frame; `step_frames[i]` is the frame at which chunk step i began and
    `step_frames[-1]` the episode's last frame (T + 1 entries for T chunk steps)."""
    idx = np.asarray(step_frames, int)
    if len(idx) < 2 or idx[-1] >= len(progress) or np.any(np.diff(idx) < 0):
        raise ValueError(f"Chunk-step frames {list(idx)} do not fit a progress curve of {len(progress)} frames.")
    progress = np.asarray(progress, np.float32)
    return (progress[idx[1:]] - progress[idx[:-1]]).astype(np.float32)


def per_frame(progress: np.ndarray, num_frames: int, positions: Sequence[int] | None = None) -> np.ndarray:
    """A backend that scored n of the clip's frames gives n values: interpolate them back onto every
    frame. `positions`: the frames they belong to (default: evenly spaced, first and last kept)."""
    progress = np.asarray(progress, np.float32).reshape(-1)
    if len(progress) == 0:
        raise ValueError("The backend returned no progress values.")
    if positions is None:
        if len(progress) == num_frames:
            return progress
        if len(progress) == 1:
            return np.full(num_frames, progress[0], np.float32)
        positions = np.linspace(0, num_frames - 1, len(progress))
    if len(positions) != len(progress):
        raise ValueError(f"{len(progress)} progress values for {len(positions)} frame positions.")
    return np.interp(np.arange(num_frames), np.asarray(positions, float), progress).astype(np.float32)


def staged_progress(segments: Sequence[tuple[int, int, int, np.ndarray]], num_stages: int, num_frames: int) -> np.ndarray:
    """Overall progress per frame from per-stage progress: (stage + progress within it) / stages.

    `segments`: (stage, first frame, last frame, progress over those frames) in order; a frame
    shared by two segments takes the later stage's value. Frames after the last segment keep its
    final value."""
    out = np.zeros(num_frames, np.float32)
    end = 0
    for stage, first, last, progress in segments:
        values = per_frame(progress, last - first + 1)
        out[first:last + 1] = (stage + np.clip(values, 0.0, 1.0)) / num_stages
        end = last + 1
    if 0 < end < num_frames:
        out[end:] = out[end - 1]
    return out


def shape_rewards(form: str, score: EpisodeScore, num_steps: int, progress: np.ndarray | None = None,
                  step_frames: Sequence[int] = ()) -> np.ndarray:
    """One reward per chunk step in the given form."""
    if num_steps < 1:
        raise ValueError("An episode needs at least one chunk step to be rewarded.")
    if form == "sparse":
        return sparse_rewards(num_steps, score.reward)
    if form == "step_penalty":
        return step_penalty_rewards(num_steps, score.success)
    if form == "dense":
        if progress is None:
            raise ValueError("reward.form=dense needs the episode's progress per frame.")
        rewards = progress_deltas(progress, step_frames)
        if len(rewards) != num_steps:
            raise ValueError(f"{len(rewards)} progress deltas for {num_steps} chunk steps.")
        return rewards
    raise ConfigError(f"Unknown reward.form '{form}'; choose one of: {', '.join(FORMS)}.")
