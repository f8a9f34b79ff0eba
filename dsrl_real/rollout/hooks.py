"""Hooks of the episode loop that keep what an episode showed: its camera frames and the
simulator's truth (for reward models and videos), the reward side's monitor, and the transitions
of an `.npz` episode (data/episodes.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..data.episodes import Episode, EpisodeBuilder
from ..envs.robot_env import RobotEnv, image_key
from .loop import EpisodeHook, EpisodeResult, Step

if TYPE_CHECKING:
    from ..rewards.scoring import EpisodeEnd, EpisodeMonitor


class FrameClip(EpisodeHook):
    """Every camera frame of the episode (the first observation's included) and the simulator's
    task status after each step, as lists that grow while it runs (the reward side reads prefixes)."""

    def __init__(self) -> None:
        self.frames: dict[str, list[np.ndarray]] = {}
        self.truth: list = []
        self._cameras: list[str] = []

    def begin(self, env: RobotEnv, obs: dict, info: dict) -> None:
        self._cameras = [cam.name for cam in env.cameras]
        self.frames = {c: [obs[image_key(c)]] for c in self._cameras}
        self.truth = [info["task_status"]] if "task_status" in info else []

    def step(self, step: Step) -> None:
        for c in self._cameras:
            self.frames[c].append(step.next_obs[image_key(c)])
        if "task_status" in step.next_info:
            self.truth.append(step.next_info["task_status"])


class RewardMonitor(EpisodeHook):
    """The reward side during an episode (rewards/scoring.py `EpisodeMonitor`): it scores the
    prefixes of `clip` and may end the episode after any step: detected success, a stage out of
    steps, a human's key. Goes after `clip` in the hooks."""

    def __init__(self, monitor: EpisodeMonitor, clip: FrameClip):
        self.monitor, self.clip = monitor, clip
        self.stage_starts: list[int] = [0]  # the frame each reached stage began at
        self._env: RobotEnv | None = None

    def begin(self, env: RobotEnv, obs: dict, info: dict) -> None:
        self._env = env
        self.monitor.begin(self.clip.frames, self.clip.truth)

    def step(self, step: Step) -> EpisodeEnd | None:
        if step.terminated or step.truncated:
            return None
        return self.monitor.step(self._env, step.steps, step.next_info)

    def end(self, result: EpisodeResult | None) -> None:
        self.stage_starts = self.monitor.finish()

    @property
    def detected_success(self) -> bool:
        return self.monitor.detected_success

    @property
    def wait_s(self) -> float:
        """Time the control loop spent on the reward side."""
        return self.monitor.wait_s


class Transitions(EpisodeHook):
    """The episode as an `.npz` `Episode` (observations, actions, rewards, meta), in `episode` once it ends."""

    def __init__(self) -> None:
        self.episode: Episode | None = None
        self._builder: EpisodeBuilder | None = None

    def begin(self, env: RobotEnv, obs: dict, info: dict) -> None:
        self._builder = EpisodeBuilder(obs, task=env.task.name, instruction=env.task.instruction, seed=None)

    def step(self, step: Step) -> None:
        self._builder.add(step.action, step.reward, step.next_obs)

    def end(self, result: EpisodeResult | None) -> None:
        if result is not None:
            self.episode = self._builder.build(seed=result.seed, success=result.success, terminated=result.terminated,
                                               truncated=result.truncated)
