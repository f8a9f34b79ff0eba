"""Run episodes of a policy in an environment and summarise them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .data.episodes import Episode, EpisodeBuilder
from .envs.robot_env import RobotEnv
from .sim.expert import ScriptedExpert

ActionFn = Callable[[dict], np.ndarray]
EVAL_SEED = 10_000  # evaluation scenes: fixed, and never the demo or training scenes


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    final_progress: float
    safety_interventions: int
    episode: Episode | None = None


def scripted_expert(env: RobotEnv, noise: float = 0.0, seed: int | None = None) -> ActionFn:
    sim = getattr(env.scene, "sim", None)
    if sim is None:
        raise ValueError("The scripted expert needs the simulator's ground truth; use robot.kind=sim.")
    expert = ScriptedExpert(sim, noise=noise, seed=seed)
    return lambda obs: expert.act()


def random_policy(env: RobotEnv, seed: int | None = None) -> ActionFn:
    env.action_space.seed(seed)
    return lambda obs: env.action_space.sample()


def run_episode(env: RobotEnv, act: ActionFn, seed: int, record: bool = False) -> EpisodeResult:
    """One episode; `act` may have a `reset()` (called first). With `record`, the result keeps the episode."""
    if hasattr(act, "reset"):
        act.reset()
    obs, info = env.reset(seed=seed)
    builder = EpisodeBuilder(obs, task=env.task.name, instruction=env.task.instruction, seed=seed) if record else None
    terminated = truncated = False
    while not (terminated or truncated):
        action = act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        if builder is not None:
            builder.add(action, reward, obs)
    counts = info["safety_counts"]
    return EpisodeResult(
        seed=seed,
        success=bool(info.get("success", False)),
        steps=info["step"],
        final_progress=float(info.get("progress", math.nan)),
        safety_interventions=counts["clipped_step"] + counts["clipped_workspace"] + counts["non_finite"],
        episode=builder.build(success=bool(info.get("success", False)), terminated=terminated, truncated=truncated)
        if builder is not None else None,
    )


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def success_summary(successes: int, trials: int) -> dict:
    """Success rate with its 95% Wilson interval, as benchmarks and evaluations report it."""
    return {"success_rate": successes / max(trials, 1), "ci95": [round(x, 3) for x in wilson_interval(successes, trials)],
            "episodes": trials}


class ChunkController:
    """Executes a chunked policy open-loop: sample H actions, play them, then sample again.

    `noise_fn(obs)` gives the sampler's initial noise (H, A): N(0, I) for the base policy, the
    DSRL actor's output when fine-tuning.
    """

    def __init__(self, policy, noise_fn: Callable[[dict], np.ndarray]):
        self.policy, self.noise_fn = policy, noise_fn
        self._queue: list[np.ndarray] = []

    def reset(self) -> None:
        self._queue = []

    def __call__(self, obs: dict) -> np.ndarray:
        if not self._queue:
            batch = {k: np.asarray(v)[None] for k, v in obs.items()}
            chunk = self.policy.sample(batch, np.asarray(self.noise_fn(obs))[None])[0]
            self._queue = list(chunk)
        return self._queue.pop(0)


def gaussian_noise(shape: tuple[int, ...], seed: int | None = None) -> Callable[[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    return lambda obs: rng.standard_normal(shape).astype(np.float32)


def evaluate(env: RobotEnv, act: ActionFn, episodes: int, seed: int = 0) -> list[EpisodeResult]:
    return [run_episode(env, act, seed=seed + i) for i in range(episodes)]
