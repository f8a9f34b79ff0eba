"""A recorded rollout: one env episode with every step, frame and label written by a `RunRecorder`.

Used for demos, human-oracle baseline runs in simulation, the recording benchmark and the tests;
the DSRL trainer records its chunked episodes with the same columns (`step_columns`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..envs.robot_env import RobotEnv, image_key
from ..rewards.base import EpisodeClip, RewardBackend
from .labels import shadow_labels
from .writer import RunRecorder


def step_columns(obs: dict, info: dict, *, action=None, reward=None, step_info: dict | None = None,
                 step_time_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """The standard columns of one row: observation o_t (and `info` from when it was observed),
    and, if an action was taken from it, the action, its reward and what the step reported
    (`step_info`: safety intervention, refusal, overrun of the control period)."""
    columns: dict[str, Any] = {"observation": obs, "stage": int(info.get("stage", 0))}
    if "progress" in info:  # simulator ground truth
        columns["truth"] = {"progress": float(info["progress"]), "success": bool(info.get("success", False))}
    if action is not None:
        columns.update(action=np.asarray(action, np.float32), reward=None if reward is None else float(reward))
        if step_info is not None:
            columns["safety_intervened"] = bool(step_info.get("safety_intervened", False))
            columns["refused"] = bool(step_info.get("refused", False))
            if "overruns" in step_info:
                columns["overrun"] = step_info["overruns"] > info.get("overruns", 0)
        if step_time_s is not None:
            columns["step_time_s"] = float(step_time_s)
    columns.update(extra)
    return columns


def _frames(env: RobotEnv, obs: dict) -> dict[str, np.ndarray]:
    return {cam.name: obs[image_key(cam.name)] for cam in env.cameras}


def record_episode(env: RobotEnv, act: Callable[[dict], np.ndarray], recorder: RunRecorder, *, kind: str, seed: int,
                   backends: Iterable[RewardBackend] = (), human: Callable[[EpisodeClip], dict] | None = None) -> dict:
    """Run one episode of `act` and record it; every backend (and `human`, giving the human's label
    dict) labels the finished episode. Returns the episode's record. An exception (Ctrl-C included)
    seals what was recorded as a partial episode and propagates."""
    backends = list(backends)
    if hasattr(act, "reset"):
        act.reset()
    obs, info = env.reset(seed=seed)
    keep = bool(backends) or human is not None  # the backends need the frames and the truth afterwards
    clip_frames = {c: [f] for c, f in _frames(env, obs).items()} if keep else {}
    truth = [info["task_status"]] if "task_status" in info else []
    with recorder.begin_episode(kind, seed, env.task.instruction) as ep:
        ep.add_frames(_frames(env, obs))
        terminated = truncated = False
        while not (terminated or truncated):
            action = act(obs)
            start = time.perf_counter()
            next_obs, reward, terminated, truncated, next_info = env.step(action)
            elapsed = time.perf_counter() - start
            ep.add_step(**step_columns(obs, info, action=action, reward=reward, step_info=next_info, step_time_s=elapsed))
            obs, info = next_obs, next_info
            frames = _frames(env, obs)
            ep.add_frames(frames)
            if keep:
                for c, f in frames.items():
                    clip_frames[c].append(f)
            if "task_status" in info:
                truth.append(info["task_status"])
        ep.add_step(**step_columns(obs, info))  # the final observation: no action
        labels = {}
        if keep:
            clip = EpisodeClip(frames={c: np.stack(f) for c, f in clip_frames.items()}, instruction=env.task.instruction,
                               fps=env.control_hz, truth=tuple(truth))
            labels = shadow_labels(backends, clip)
            if human is not None:
                labels["human"] = human(clip)
        return ep.finish(success=bool(info.get("success", False)), terminated=terminated, truncated=truncated,
                         labels=labels, safety_counts=info["safety_counts"])
