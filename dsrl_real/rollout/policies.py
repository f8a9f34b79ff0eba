"""What the episode loop can run: the scripted expert, random actions, and a chunked policy
(`ChunkPlayback`) played open-loop from the noise a noise source gives it."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..envs.robot_env import RobotEnv
from ..sim.expert import ScriptedExpert
from .loop import ActionFn


def scripted_expert(env: RobotEnv, noise: float = 0.0, seed: int | None = None) -> ActionFn:
    sim = getattr(env.scene, "sim", None)
    if sim is None:
        raise ValueError("The scripted expert needs the simulator's ground truth; use robot.kind=sim.")
    expert = ScriptedExpert(sim, noise=noise, seed=seed)
    return lambda obs: expert.act()


def random_policy(env: RobotEnv, seed: int | None = None) -> ActionFn:
    env.action_space.seed(seed)
    return lambda obs: env.action_space.sample()


def gaussian_noise(shape: tuple[int, ...], seed: int | None = None) -> Callable[[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.standard_normal(shape).astype(np.float32)


class ChunkPlayback:
    """A chunked policy executed open-loop: denoise the noise `noise_fn(obs)` gives (H x A) once into
    H actions, play them, then ask again. `noise_fn` is N(0, I) for the base policy, the DSRL actor
    when fine-tuning. It keeps each chunk step (where it began, its observation, noise and chunk)
    for the learner, and its first action carries `act_info` (noise, chunk, act_time_s) for the
    recorder's row."""

    def __init__(self, policy, noise_fn: Callable[[dict], np.ndarray]):
        self.policy, self.noise_fn = policy, noise_fn
        self.reset()

    def reset(self) -> None:
        self._queue: list[np.ndarray] = []
        self._played = 0
        self.starts: list[int] = []  # the env step each chunk began at
        self.observations: list[dict] = []  # the observation each chunk was chosen from
        self.noise: list[np.ndarray] = []
        self.chunks: list[np.ndarray] = []
        self.act_info: dict = {}

    def __call__(self, obs: dict) -> np.ndarray:
        self.act_info = {}
        if not self._queue:
            start = time.perf_counter()
            batch = {k: np.asarray(v)[None] for k, v in obs.items()}
            w = np.asarray(self.noise_fn(obs), np.float32)
            chunk = self.policy.sample(batch, w[None])[0]  # denoised once, executed as is
            self._queue = list(chunk)
            self.starts.append(self._played)
            self.observations.append(obs)
            self.noise.append(w)
            self.chunks.append(np.asarray(chunk, np.float32))
            self.act_info = {"noise": w, "chunk": self.chunks[-1], "act_time_s": time.perf_counter() - start}
        self._played += 1
        return self._queue.pop(0)

    def step_frames(self, steps: int) -> list[int]:
        """The frame each chunk step began at, then the episode's last frame (`steps` env steps)."""
        return [0, *self.starts[1:], steps]

    def chunk_rewards(self, rewards: list[float]) -> list[float]:
        """The env's rewards summed over each chunk step."""
        bounds = [*self.starts, len(rewards)]
        sums = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            total = 0.0
            for r in rewards[a:b]:
                total += r
            sums.append(total)
        return sums
