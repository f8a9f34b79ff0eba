"""`dsrl-real bench learning`: DSRL-SAC, DSRL-NA and action-space SAC on the simulated monkey task."""

from __future__ import annotations

import time
from pathlib import Path

from ..analysis.metrics import plot_learning_curve, read_records
from ..config import load_config
from ..config.observations import observation_label, observation_overrides
from ..policies.pipeline import base_success, pretrain_from_demos
from ..train.trainer import train_once

LEARNING_RUNS = (
    ("dsrl_sac", ["agent.algorithm=dsrl_sac"]),
    ("dsrl_na", ["agent.preset=sim_cpu_na"]),
    ("sac_action_space", ["train.action_space_baseline=true"]),
)


def bench_learning(env_steps: int = 5000, eval_episodes: int = 50, curve_episodes: int = 20,
                   out_dir: str = "runs/bench-learning", obs: str = "pixels") -> dict:
    """DSRL-SAC, DSRL-NA and action-space SAC on the simulated monkey task (observation mode `obs`, sparse
    success reward, CPU preset), from the default-recipe base policy, on the same step budget. The
    base rate and each run's final success take `eval_episodes` trials, the learning curve's periodic
    evaluations `curve_episodes`. The runs go one after the other: each already keeps both cores busy
    (side by side in single-threaded workers, measured on 2 cores, they took longer in total)."""
    start = time.perf_counter()
    out = Path(out_dir) / time.strftime("%Y%m%d-%H%M%S")
    base_cfg = load_config(overrides=[*observation_overrides(obs), "agent.preset=sim_cpu"])
    policy, _, _ = pretrain_from_demos(base_cfg, out / "base")
    result: dict = {"task": "monkey", "observations": observation_label(base_cfg), "env_steps_budget": env_steps,
                    "eval_episodes": eval_episodes, "curve_episodes": curve_episodes,
                    "base_success_rate": base_success(base_cfg, policy, eval_episodes)["success_rate"]}
    curves = []
    for label, overrides in LEARNING_RUNS:
        cfg = load_config(overrides=[
            *observation_overrides(obs), "agent.preset=sim_cpu", f"train.out_dir={out / label}", f"train.env_steps={env_steps}",
            f"train.eval_episodes={curve_episodes}", f"train.final_eval_episodes={eval_episodes}", "train.wandb=disabled", *overrides,
        ])
        run_start = time.perf_counter()
        run = train_once(cfg, policy)
        result[label] = {"base_success_rate": result["base_success_rate"], "final_success_rate": run["final_success_rate"],
                         "final_ci95": run["final_ci95"], "env_steps": run["env_steps"],
                         "wall_s": round(time.perf_counter() - run_start, 1)}
        curves += [r for r in read_records(out / label / "metrics.jsonl") if r["kind"] in ("eval", "final_eval")]
    result["learning_curve"] = str(plot_learning_curve(curves, out / "learning_curve.png", "monkey, sparse success reward"))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result
