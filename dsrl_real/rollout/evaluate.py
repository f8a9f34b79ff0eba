"""Evaluation: episodes on fixed scenes, and their success rate with its 95% Wilson interval."""

from __future__ import annotations

import math

from ..envs.robot_env import RobotEnv
from .loop import ActionFn, EpisodeResult, run_episode

EVAL_SEED = 10_000  # evaluation scenes: fixed, and never the demo or training scenes


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(count: int, n: int) -> dict:
    """`count` of `n` as a rate with its 95% Wilson interval (value and interval None when `n` is 0)."""
    return {"value": count / n if n else None, "ci95": list(wilson_interval(count, n)) if n else None, "count": count, "n": n}


def success_summary(successes: int, trials: int) -> dict:
    """Success rate with its 95% Wilson interval, as benchmarks and evaluations report it."""
    return {"success_rate": successes / max(trials, 1), "ci95": [round(x, 3) for x in wilson_interval(successes, trials)],
            "episodes": trials}


def evaluate(env: RobotEnv, act: ActionFn, episodes: int, seed: int = 0) -> list[EpisodeResult]:
    return [run_episode(env, act, seed=seed + i) for i in range(episodes)]
