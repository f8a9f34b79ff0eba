"""Seeding (train.seed_runs): the complete episodes of earlier recorded runs as replay-buffer
episodes, regrouped into chunk steps with their recorded noise (none: `fill_noise` fits it for DSRL-SAC,
else the transitions are masked for SAC, usable by DSRL-NA) and rewards re-shaped by reward.form from the recorded label of the
current primary backend, or, without one, the recorded per-step rewards. `label` may name several labels,
the first an episode has counting: a verify-positives run reads its training label first (labels.py), whose
end flags, where a human rejected a success, replace the recorded ones.

A run's own training episodes come back the same way (`own_episodes`): learner.mode=ray takes the
episodes a restarted learner had not acknowledged from the recording (train/recovery.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError
from ..rewards.base import EpisodeScore
from ..rewards.shaping import progress_deltas, shape_rewards
from .layout import RecordingError
from .reader import RecordedRun


def _chunk_starts(steps: int, noise: np.ndarray | None, chunk_size: int) -> list[int]:
    """Where chunk steps begin, as `RecordedEpisode.chunk_steps` groups them: at every row with noise,
    else every `chunk_size` rows."""
    if noise is not None and steps > 0 and not np.isnan(noise[0]).all():
        return [t for t in range(steps) if not np.isnan(noise[t]).all()]
    return list(range(0, steps, chunk_size))


TRAINING_KINDS = ("warm_start", "train")  # the recorded kinds of the episodes a run learns from (not its evaluations)


def _open(run_dir: str | Path, where: str, observation_space) -> tuple[RecordedRun, bool]:
    """The recorded run and whether this run's observations have cameras (which the recording must have)."""
    try:
        run = RecordedRun(run_dir)
    except RecordingError as err:
        raise ConfigError(f"{where}: {err}") from err
    spaces = observation_space.spaces
    cameras = [k[:-len("_image")] for k, s in spaces.items() if s.dtype == np.uint8 and len(s.shape) == 3]
    missing = [c for c in cameras if c not in run.cameras]
    if missing:
        raise ConfigError(f"{where} recorded the cameras {run.cameras}, not {missing}; seed from a run with this run's cameras.")
    return run, bool(cameras)


def _label(labels: dict, names: str | tuple[str, ...]) -> dict | None:
    """The first of the labels `names` that `labels` holds (None if none)."""
    return next((labels[n] for n in ((names,) if isinstance(names, str) else names) if n in labels), None)


def seed_transitions(run_dir: str | Path, *, observation_space, noise_shape: tuple[int, ...], chunk_shape: tuple[int, ...],
                     label: str | tuple[str, ...], form: str) -> Iterator[dict[str, Any]]:
    """The complete episodes of a recorded run as `ReplayBuffer.add_episode` arguments (without the
    features): observations at every chunk step and the final one, noise (None when not recorded),
    chunks, rewards, terminated, truncated."""
    where = f"train.seed_runs entry '{run_dir}'"
    run, images = _open(run_dir, where, observation_space)
    for episode in run.episodes(images=images):
        arrays = _transitions(episode, where, observation_space, noise_shape, chunk_shape, label, form)
        if arrays is not None:
            yield arrays


def own_episodes(run_dir: str | Path, numbers: list[int], *, observation_space, noise_shape: tuple[int, ...],
                 chunk_shape: tuple[int, ...], label: str | tuple[str, ...], form: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """A run's own training episodes numbered `numbers` (their train_episode; of several recorded with one
    number, as a resumed run re-runs the episodes after its checkpoint, the last), in that order, each as
    (number, `seed_transitions`' arrays); the arrays are None for an episode whose `label` is not written
    yet (its score is on the way), and nothing after it comes. An episode the recording lacks is a RecordingError."""
    where = f"The run folder '{run_dir}'"
    run, images = _open(run_dir, where, observation_space)
    last = {int(r["train_episode"]): r for r in run.records
            if r.get("kind") in TRAINING_KINDS and not r.get("partial") and r.get("train_episode") is not None}
    for number in numbers:
        record = last.get(number)
        if record is None:
            raise RecordingError(f"{where} holds no recording of its training episode {number}, which the learner never "
                                 "acknowledged; run again with --resume to continue from the last checkpoint.")
        if _label(record.get("labels") or {}, label) is None:
            yield number, None
            return
        arrays = _transitions(run.episode(record["episode_index"], images=images), where, observation_space, noise_shape,
                              chunk_shape, label, form)
        if arrays is None:
            raise RecordingError(f"{where} recorded its training episode {number} without its final observation; run "
                                 "again with --resume to continue from the last checkpoint.")
        yield number, arrays


def _transitions(episode, where: str, observation_space, noise_shape: tuple[int, ...], chunk_shape: tuple[int, ...],
                 label: str | tuple[str, ...], form: str) -> dict[str, Any] | None:
    """One recorded episode as `seed_transitions` gives it; None when it has no step or no final observation."""
    spaces = observation_space.spaces
    if not len(episode):
        return None
    observations = {k: v for k, v in episode.observations.items() if k in spaces}
    if sorted(observations) != sorted(spaces) or any(v.shape[1:] != spaces[k].shape for k, v in observations.items()):
        got = {k: v.shape[1:] for k, v in episode.observations.items()}
        want = {k: s.shape for k, s in spaces.items()}
        raise ConfigError(f"{where} has observations {got}; this run's environment gives {want}. "
                          "Seed from a run with the same observations.")
    if len(observations[next(iter(observations))]) <= len(episode):
        return None  # no final observation: a recording not made by an episode loop
    episode.observations = observations
    steps = episode.chunk_steps(chunk_shape[0])
    noise, chunks = steps["noise"], steps["chunks"]
    if noise is not None and noise.shape[1:] != tuple(noise_shape):
        raise ConfigError(f"{where} recorded noise of shape {noise.shape[1:]}; this base policy's is {tuple(noise_shape)}. "
                          "Seed from a run of a policy with the same chunk size.")
    if chunks.shape[1:] != tuple(chunk_shape):
        raise ConfigError(f"{where} recorded chunks of shape {chunks.shape[1:]}; this run's are {tuple(chunk_shape)}.")
    starts = _chunk_starts(len(episode), episode.noise, chunk_shape[0])
    chosen = _label(episode.labels, label)
    flags = chosen if chosen is not None and "terminated" in chosen else steps  # a training label's flags, as it trained
    return {"observations": steps["observations"], "noise": noise, "chunks": chunks,
            "rewards": seed_rewards(chosen, form, starts + [len(episode)], steps["rewards"]),
            "terminated": bool(flags["terminated"]), "truncated": bool(flags["truncated"])}


# A fitted chunk further than this from the recorded one (mean squared, in the policy's normalised action units: an RMS
# of ~0.22, a ninth of the demonstrations' range) is one the base policy cannot make under any noise in its box; its
# row keeps no noise (masked for SAC). On the monkey bench's demonstrations: mean 0.004, 90th percentile 0.008, max 0.04.
FIT_TOLERANCE = 0.05


def fill_noise(episodes: list[dict[str, Any]], fit: Callable[[dict[str, np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Give the `seed_transitions` episodes recorded without noise (demonstrations, teleoperation) fitted noise, in
    place: `fit(observations, chunks) -> (noise, error)` on all their chunk steps at once (DiffusionPolicy.fit_noise);
    a chunk step whose error passes FIT_TOLERANCE gets NaN noise (no noise). Returns what the seeding record says:
    chunk steps fitted, left without noise, and the fitted ones' mean error."""
    missing = [ep for ep in episodes if ep["noise"] is None]
    if not missing:
        return {}
    observations = {k: np.concatenate([ep["observations"][k][:-1] for ep in missing]) for k in missing[0]["observations"]}
    noise, error = fit(observations, np.concatenate([ep["chunks"] for ep in missing]))
    kept = error <= FIT_TOLERANCE
    noise = np.where(kept[:, None, None], noise, np.nan).astype(np.float32)
    start = 0
    for ep in missing:
        ep["noise"], start = noise[start:start + len(ep["chunks"])], start + len(ep["chunks"])
    return {"noise_fitted": int(kept.sum()), "noise_unfitted": int((~kept).sum()),
            "noise_fit_error": round(float(error[kept].mean()), 5) if kept.any() else None}


def seed_rewards(label: dict | None, form: str, step_frames: list[int], recorded: np.ndarray) -> np.ndarray:
    """One reward per chunk step: the label shaped by `form` (dense: from the label's per-frame
    progress), else the recorded per-step rewards summed over each chunk step."""
    if label is None or (form == "dense" and label.get("progress") is None):
        return np.asarray(recorded, np.float32)
    if form == "dense":
        return progress_deltas(np.asarray(label["progress"], np.float32), step_frames)
    score = EpisodeScore(reward=float(label.get("reward") or 0.0), success=bool(label.get("success")), score=label.get("score"))
    return shape_rewards(form, score, len(step_frames) - 1)
