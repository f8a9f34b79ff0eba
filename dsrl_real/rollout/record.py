"""Recording an episode as it runs: the recorder's hook (`StepRows`), and `record_episode`, one
recorded rollout with every step, frame and label written by a `RunRecorder`.

`record_episode` serves demos, human-oracle baseline runs in simulation, the recording benchmark
and the tests; the DSRL trainer records its chunked episodes with the same hook. Row t holds o_t's
vectors (with the info from when it was observed), the executed action, the environment's reward,
the stage, safety interventions, how long the env step took; on a chunk's first row the chunk's
noise w, the whole denoised chunk and how long acting took; with the reward side, how long the
control loop waited on it, the human's keys and every new prefix score (`progress.<backend>`,
`success_prob.<backend>`). Camera frames go to the videos as they come; a last row holds the final
observation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..envs.robot_env import RobotEnv, image_key
from ..recording.labels import label_name, shadow_labels
from ..recording.rows import step_columns
from ..recording.writer import EpisodeRecording, RunRecorder
from ..rewards.base import EpisodeClip, RewardBackend
from .hooks import FrameClip
from .loop import EpisodeHook, EpisodeResult, Step, reset, run_episode

if TYPE_CHECKING:
    from ..rewards.scoring import EpisodeMonitor


class StepRows(EpisodeHook):
    """Records an episode as it runs: a row per env step and its camera frames, then the final
    observation's row once it ends. With the reward side's `monitor`, its columns too (put this
    hook after the monitor's)."""

    def __init__(self, recording: EpisodeRecording, monitor: EpisodeMonitor | None = None):
        self.recording, self.monitor = recording, monitor
        self.backend = label_name(monitor.backend) if monitor is not None else ""
        self.multi_stage = monitor is not None and len(monitor.tracker.stages) > 1
        self.cameras: list[str] = []
        self._wait_s, self._results, self._keys = 0.0, 0, 0

    def begin(self, env: RobotEnv, obs: dict, info: dict) -> None:
        self.cameras = [cam.name for cam in env.cameras]
        self._frames(obs)

    def step(self, step: Step) -> None:
        """Row t: o_t with `info` from when it was observed, the action taken and what the step gave."""
        self.recording.add_step(**step_columns(step.obs, step.info, action=step.action, reward=step.reward,
                                               step_info=step.next_info, step_time_s=step.step_time_s, **step.act_info,
                                               **self._reward_side()))
        self._frames(step.next_obs)

    def end(self, result: EpisodeResult | None) -> None:
        if result is not None:
            self.recording.add_step(**step_columns(result.obs, result.info, **self._stage()))  # the final observation: no action

    def _frames(self, obs: dict) -> None:
        if self.cameras:
            self.recording.add_frames({c: obs[image_key(c)] for c in self.cameras})

    def _stage(self) -> dict[str, Any]:
        # On multi-stage detection the reward side's stage is the one the robot is asked about (on
        # hardware the environment has no stage of its own); otherwise the environment's.
        return {"stage": self.monitor.tracker.stage} if self.multi_stage else {}

    def _reward_side(self) -> dict[str, Any]:
        monitor = self.monitor
        if monitor is None:
            return {}
        columns: dict[str, Any] = {"reward_wait_s": monitor.wait_s - self._wait_s, **self._stage()}
        self._wait_s = monitor.wait_s
        if monitor.prefix_results != self._results:  # a prefix score came in during this step
            self._results = monitor.prefix_results
            columns["progress"] = {self.backend: monitor.last_progress}
            columns["success_prob"] = {self.backend: monitor.last_success_prob}
        if len(monitor.keys) > self._keys:
            columns["human_key"] = ",".join(monitor.keys[self._keys:])
            self._keys = len(monitor.keys)
        return columns


def record_episode(env: RobotEnv, act: Callable[[dict], np.ndarray], recorder: RunRecorder, *, kind: str, seed: int,
                   backends: Iterable[RewardBackend] = (), human: Callable[[EpisodeClip], dict] | None = None) -> dict:
    """Run one episode of `act` and record it; every backend (and `human`, giving the human's label
    dict) labels the finished episode. Returns the episode's record. An exception (Ctrl-C included)
    seals what was recorded as a partial episode and propagates."""
    backends = list(backends)
    start = reset(env, act, seed)
    keep = bool(backends) or human is not None  # the backends need the frames and the truth afterwards
    clip = FrameClip()
    with recorder.begin_episode(kind, seed, env.task.instruction) as ep:
        result = run_episode(env, act, seed=seed, start=start, hooks=[clip, StepRows(ep)] if keep else [StepRows(ep)])
        labels = {}
        if keep:
            episode_clip = EpisodeClip(frames={c: np.stack(f) for c, f in clip.frames.items()}, instruction=env.task.instruction,
                                       fps=env.control_hz, truth=tuple(clip.truth))
            labels = shadow_labels(backends, episode_clip)
            if human is not None:
                labels["human"] = human(episode_clip)
        return ep.finish(success=result.success, terminated=result.terminated, truncated=result.truncated,
                         labels=labels, safety_counts=result.info["safety_counts"])
