"""The one episode loop: evaluation, demos, recording and training all run their episodes here.

`run_episode(env, act, hooks=...)` steps `act` (obs -> action) until the episode ends. What differs
between its users lives in hooks (hooks.py, record.py), each seeing every step in order:
the camera frames kept for the reward side, the reward monitor that may end the episode early,
the recorder's rows. A chunked policy is an `act` too (policies.ChunkPlayback); what it decided
for an action (the chunk's noise and chunk, on the chunk's first action) reaches the hooks as
`Step.act_info`, read from the policy's `act_info` attribute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..envs.robot_env import RobotEnv

if TYPE_CHECKING:
    from ..rewards.scoring import EpisodeEnd

ActionFn = Callable[[dict], np.ndarray]


@dataclass(frozen=True)
class Step:
    """One env step as the hooks see it: o_t with the info from when it was observed, the action,
    what the step gave, and `steps`, the env steps so far (this one included)."""

    steps: int
    obs: dict
    info: dict
    action: np.ndarray
    reward: float
    next_obs: dict
    next_info: dict
    terminated: bool
    truncated: bool
    step_time_s: float
    act_info: dict = field(default_factory=dict)


@dataclass
class EpisodeResult:
    """How an episode ended: the final observation and info, the env's reward of every step."""

    seed: int | None
    obs: dict
    info: dict
    steps: int = 0
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    end_reason: str = ""  # a hook's reason, else success (terminated) or time_limit

    @property
    def success(self) -> bool:
        return bool(self.info.get("success", False))

    @property
    def final_progress(self) -> float:
        return float(self.info.get("progress", math.nan))

    @property
    def safety_counts(self) -> dict:
        return dict(self.info.get("safety_counts", {}))

    @property
    def safety_interventions(self) -> int:
        counts = self.info["safety_counts"]
        return counts["clipped_step"] + counts["clipped_workspace"] + counts["non_finite"]


class EpisodeHook:
    """What a hook may do; each method is optional (these are no-ops)."""

    def begin(self, env: RobotEnv, obs: dict, info: dict) -> None:
        """The episode starts from `obs` (the env is reset)."""

    def step(self, step: Step) -> EpisodeEnd | None:
        """After each env step; an `EpisodeEnd` (the reward side's) ends the episode there, unless the env already did."""
        return None

    def end(self, result: EpisodeResult | None) -> None:
        """After the episode, in hook order; `result` is None when an exception cut it short."""


def reset(env: RobotEnv, act: ActionFn, seed: int | None) -> tuple[dict, dict]:
    """Reset `act` (if it has a `reset()`), then the env's scene."""
    if hasattr(act, "reset"):
        act.reset()
    return env.reset(seed=seed)


def run_episode(env: RobotEnv, act: ActionFn, *, seed: int | None = None, start: tuple[dict, dict] | None = None,
                hooks: Sequence[EpisodeHook] = ()) -> EpisodeResult:
    """One episode of `act`: from `start`, the (obs, info) of a scene the caller already reset (with
    `reset`; the trainer resets while its learner works), else from `reset(env, act, seed)`. Every
    hook sees every step, even when one of them raises (so the recorder keeps the step an emergency
    stop ended); the first exception then propagates."""
    obs, info = start if start is not None else reset(env, act, seed)
    result = EpisodeResult(seed, obs, info)
    for hook in hooks:
        hook.begin(env, obs, info)
    finished = False
    try:
        while not (result.terminated or result.truncated):
            action = act(obs)
            act_info = getattr(act, "act_info", None) or {}
            began = time.perf_counter()
            next_obs, reward, terminated, truncated, next_info = env.step(action)
            step_time_s = time.perf_counter() - began
            result.steps += 1
            result.rewards.append(reward)
            step = Step(result.steps, obs, info, action, reward, next_obs, next_info, terminated, truncated, step_time_s, act_info)
            obs, info = result.obs, result.info = next_obs, next_info
            result.terminated, result.truncated = terminated, truncated
            end = _each_step(hooks, step)
            if end is not None:
                result.terminated, result.truncated, result.end_reason = end.terminated, end.truncated, end.reason
        result.end_reason = result.end_reason or ("success" if result.terminated else "time_limit")
        finished = True
    finally:
        for hook in hooks:
            hook.end(result if finished else None)
    return result


def _each_step(hooks: Sequence[EpisodeHook], step: Step) -> EpisodeEnd | None:
    end, error = None, None
    for hook in hooks:
        try:
            said = hook.step(step)
        except BaseException as err:  # the other hooks still see the step; then it propagates
            error = error or err
            continue
        if end is None and said is not None and not (step.terminated or step.truncated):
            end = said
    if error is not None:
        raise error
    return end
