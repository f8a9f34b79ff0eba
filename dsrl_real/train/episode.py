"""One training episode of chunk steps, run by the episode loop (rollout/).

One agent decision is one *chunk step*: the agent picks the sampler's noise w (H x A), the frozen
base policy denoises it once into an action chunk, and the robot executes the chunk (stopping early
if the episode ends). `ChunkEpisode` is what the learner, the reward side and the recording need of
it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..envs.robot_env import RobotEnv
from ..policies import BasePolicy
from ..recording import EpisodeRecording
from ..rewards.scoring import EpisodeMonitor
from ..rollout import ChunkPlayback, EpisodeHook, FrameClip, RewardMonitor, run_episode
from ..rollout.record import StepRows
from .features import FeatureFn


@dataclass
class ChunkEpisode:
    observations: dict[str, list[np.ndarray]] = field(default_factory=dict)  # at every chunk step, then the final one
    features: list[np.ndarray] = field(default_factory=list)  # of those observations
    noise: list[np.ndarray] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)
    env_rewards: list[float] = field(default_factory=list)  # summed over each chunk step
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)  # every step, for reward models and videos
    truth: list = field(default_factory=list)
    step_frames: list[int] = field(default_factory=lambda: [0])  # the frame each chunk step began at, then the last frame
    terminated: bool = False
    truncated: bool = False
    success: bool = False  # the simulator's truth when it has one, else the detector's or the human's call
    detected_success: bool = False
    end_reason: str = ""  # success | time_limit | stage_time_limit | human_success | human_failure
    stage_starts: list[int] = field(default_factory=lambda: [0])  # the frame each reached stage began at
    reward_wait_s: float = 0.0  # time the control loop spent on the reward side
    env_steps: int = 0
    safety_counts: dict = field(default_factory=dict)  # the env's safety counters at the end


class FeatureNoise:
    """The noise source of a training episode: `choose_noise(agent input) -> (H, A)` on each chunk
    step's observation, keeping the features it computed (the learner's too)."""

    def __init__(self, features: FeatureFn, choose_noise: Callable[[np.ndarray], np.ndarray]):
        self.features, self.choose_noise = features, choose_noise
        self.seen: list[np.ndarray] = []

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        batch = {k: v[None] for k, v in obs.items()}
        self.seen.append(self.features(batch)[0])
        return self.choose_noise(self.features.agent_input(self.seen[-1], batch))


def run_chunk_episode(env: RobotEnv, policy: BasePolicy, features: FeatureFn, choose_noise: Callable[[np.ndarray], np.ndarray],
                      obs: dict[str, np.ndarray], info: dict, monitor: EpisodeMonitor | None = None,
                      recording: EpisodeRecording | None = None) -> ChunkEpisode:
    """Play one episode from an already reset env; `choose_noise(features) -> (H, A)`. A `monitor`
    (the reward side) may end it after any env step: detected success, a stage out of steps, a key.
    With a `recording`, every env step becomes a row and every frame goes to the videos as it happens."""
    noise = FeatureNoise(features, choose_noise)
    playback = ChunkPlayback(policy, noise)
    clip = FrameClip()
    reward_side = RewardMonitor(monitor, clip) if monitor is not None else None
    hooks: list[EpisodeHook] = [clip]
    if reward_side is not None:
        hooks.append(reward_side)
    if recording is not None:
        hooks.append(StepRows(recording, monitor))  # after the monitor: its row holds what the reward side said
    result = run_episode(env, playback, start=(obs, info), hooks=hooks)
    seen = [*playback.observations, result.obs]
    final = {k: v[None] for k, v in result.obs.items()}
    detected = reward_side is not None and reward_side.detected_success
    return ChunkEpisode(
        observations={k: [np.asarray(o[k]) for o in seen] for k in obs}, features=[*noise.seen, features(final)[0]],
        noise=playback.noise, chunks=playback.chunks, env_rewards=playback.chunk_rewards(result.rewards),
        frames=clip.frames, truth=clip.truth, step_frames=playback.step_frames(result.steps),
        terminated=result.terminated, truncated=result.truncated,
        success=bool(result.info["success"]) if "success" in result.info else detected, detected_success=detected,
        end_reason=result.end_reason, stage_starts=reward_side.stage_starts if reward_side is not None else [0],
        reward_wait_s=reward_side.wait_s if reward_side is not None else 0.0, env_steps=result.steps,
        safety_counts=result.safety_counts)


def episode_success(ep: ChunkEpisode, scored) -> bool:
    """An episode's success: the simulator's truth where there is one, else the human's verify answer (in
    `scored`, a ScoredEpisode), else the reward backend's or the env's."""
    if ep.truth:
        return ep.success
    said = scored.verification.success if scored.verification is not None else None
    return said if said is not None else bool(scored.score.success or ep.success)
