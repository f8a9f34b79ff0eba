"""The simulated end-to-end recipe: scripted demos → imitation pretraining → evaluation.

Shared by `dsrl-real demo` and `dsrl-real bench base-policy`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ..config import Config
from ..envs.make import build_env, safety_limits
from ..envs.safety import action_bounds
from ..recording import load_episodes
from ..rollout import EVAL_SEED, ChunkPlayback, evaluate, gaussian_noise, success_summary
from ..rollout.demos import collect_demos
from .diffusion import DiffusionPolicy
from .pretrain import Pretrainer


def pretrain_from_demos(cfg: Config, work_dir: Path, progress=None) -> tuple[DiffusionPolicy, Pretrainer, float]:
    """Collect `demos.*` into work_dir/demos, pretrain into work_dir/policy; returns the wall time too."""
    start = time.perf_counter()
    cfg = dataclasses.replace(cfg, demos=dataclasses.replace(cfg.demos, out_dir=str(work_dir / "demos")))
    collect_demos(cfg, progress)
    low, high = action_bounds(safety_limits(cfg))
    trainer = Pretrainer(cfg.policy, cfg.pretrain, load_episodes(cfg.demos.out_dir), low, high)
    policy = trainer.run(work_dir / "policy", progress)
    return policy, trainer, time.perf_counter() - start


def base_success(cfg: Config, policy, episodes: int, seed: int = EVAL_SEED) -> dict:
    """Success of the base policy with w ~ N(0, I), with a 95% Wilson interval."""
    env = build_env(cfg)
    results = evaluate(env, ChunkPlayback(policy, gaussian_noise(policy.noise_shape, seed=seed)), episodes, seed=seed)
    return success_summary(sum(r.success for r in results), episodes)
