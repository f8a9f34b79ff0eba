"""`dsrl-real bench robot-idle`: how long the robot stands waiting for the learner, with the learner inline and
as a Ray actor (learner.mode), side by side."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from ..analysis.metrics import read_records
from ..analysis.robot_idle import robot_summary
from ..config import Config, load_config
from ..config.observations import observation_label, observation_overrides
from ..envs.make import build_env
from ..envs.robot_env import RobotEnv
from ..machine import machine_info
from ..policies import load_base_policy
from ..policies.diffusion import DiffusionPolicy, Normalization, init_params
from ..train.trainer import train_once

# The paper-size agent (RoboReward's real WidowX, Table 9) on the simulated WidowX in real time at its 5 Hz, one
# warm-start episode (its gradient work is then one episode's, as every later one's; the preset's 20 would take
# the whole budget), evaluations of one episode (the trainer's step-0 and final ones). In ray mode the robot may
# act with parameters up to RAY_MAX_POLICY_LAG versions old: on a CPU shared with the robot the learner cannot
# keep up with 30 gradient steps per chunk step, and the honest number is the gradient steps it achieved.
BENCH_OVERRIDES = ("agent.preset=widowx_real", "env.real_time=true", "train.warm_start_episodes=1", "train.eval_episodes=1",
                   "train.eval_every_steps=1000000000", "train.wandb=disabled")
RAY_MAX_POLICY_LAG = 100
MODES = ("inline", "ray")


def untrained_policy(cfg: Config, env: RobotEnv) -> DiffusionPolicy:
    """A diffusion policy of the configured architecture with its initial weights: a pretrained one's compute per
    chunk step, without collecting demos and pretraining (what it does with the robot does not matter here)."""
    spaces = env.observation_space.spaces
    keys = [*cfg.policy.vector_keys, *cfg.policy.image_keys]
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    normalization = Normalization(vector_mean={k: np.zeros(spaces[k].shape, np.float32) for k in cfg.policy.vector_keys},
                                  vector_std={k: np.ones(spaces[k].shape, np.float32) for k in cfg.policy.vector_keys},
                                  action_low=low, action_high=high, action_bound_low=low, action_bound_high=high)
    example = {k: np.zeros((1, *spaces[k].shape), spaces[k].dtype) for k in keys}
    params = init_params(cfg.policy, len(low), example, jax.random.PRNGKey(cfg.run.seed))
    return DiffusionPolicy(cfg.policy, len(low), normalization, params, {k: spaces[k].shape for k in keys})


def _run_mode(cfg: Config) -> dict:
    """One training run; the robot's time after the warm start (analysis/robot_idle.py) and the run's wall time."""
    start = time.perf_counter()
    env = build_env(cfg)
    policy = load_base_policy(cfg.policy) if cfg.policy.checkpoint or cfg.policy.external else untrained_policy(cfg, env)
    result = train_once(cfg, policy, env)
    summary = robot_summary(read_records(Path(cfg.train.out_dir) / "metrics.jsonl"))
    return {**(summary or {"episodes": 0}), "max_policy_lag": cfg.learner.max_policy_lag if cfg.learner.mode == "ray" else 0,
            "run_episodes": result["episodes"], "run_env_steps": result["env_steps"], "run_wall_s": round(time.perf_counter() - start, 1)}


def bench_robot_idle(episodes: int = 5, overrides: Sequence[str] = (), modes: Sequence[str] = MODES,
                     out_dir: str = "runs/bench-robot-idle", obs: str = "pixels") -> dict:
    """The `widowx_real` agent with the simulated WidowX in real time, for `episodes` episodes after the warm start
    and one more (the env-step budget: that many full-length episodes), once per learner mode. Per mode, over those episodes:
    `robot_idle_fraction` (the robot's waits for the learner over the loop's wall time), `grad_steps_per_env_step`
    (achieved; `nominal_grad_steps_per_env_step` is what inline mode waits for), `policy_lag` (mean, max),
    `env_steps_per_s` and `wall_s`; `run_wall_s` adds the warm start, the evaluations and the learner's
    remaining work at the end. `overrides` (dotted, as for `dsrl-real train`) come after the bench's own."""
    out = Path(out_dir) / time.strftime("%Y%m%d-%H%M%S")
    date = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    base = load_config(overrides=[*observation_overrides(obs), *BENCH_OVERRIDES, f"learner.max_policy_lag={RAY_MAX_POLICY_LAG}",
                                  *overrides])
    # One episode more than summarised: the run's last is absorbed at its end (analysis/robot_idle.robot_summary).
    budget = (base.train.warm_start_episodes + episodes + 1) * base.task.max_steps
    a, p = base.agent, base.policy
    result: dict = {"observations": observation_label(base),
                    "agent": {"preset": a.preset, "hidden_dim": a.hidden_dim, "utd": a.utd, "batch_size": a.batch_size},
                    "control_hz": base.robot.control_hz, "real_time": base.env.real_time, "max_steps": base.task.max_steps,
                    "warm_start_episodes": base.train.warm_start_episodes, "episodes_after_warm_start": episodes,
                    "env_steps_budget": budget,
                    "nominal_grad_steps_per_env_step": round(a.utd * base.train.updates_per_chunk / p.chunk_size, 4),
                    "base_policy": p.external or p.checkpoint or "untrained diffusion policy (initial weights)",
                    "date": date, "machine": machine_info(), "out_dir": str(out)}
    for mode in modes:
        cfg = dataclasses.replace(base, learner=dataclasses.replace(base.learner, mode=mode),
                                  train=dataclasses.replace(base.train, out_dir=str(out / mode), env_steps=budget))
        result[mode] = _run_mode(cfg)
    return result
