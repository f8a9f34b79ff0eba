"""`dsrl-real bench fleet`: 1, 2 and 4 actors feeding one learner (learner.mode=ray, actors.num): this process's
simulated robot and the simulated actors beside it, as fast as they run (observation mode `obs`), each run on the same
budget of this robot's env steps from the same base policy. Per fleet size: each actor's env steps per second
and their sum, the learner's gradient steps per second, the learning curve (this robot's evaluations, with the
wall-clock minutes since the run started) and the minutes to first reach the single-actor run's final success
rate."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..analysis.metrics import plot_learning_curve, read_records
from ..config import load_config
from ..config.observations import observation_label, observation_overrides
from ..machine import machine_info
from ..policies.pipeline import pretrain_from_demos
from ..train.trainer import train_once

FLEET_SIZES = (1, 2, 4)
# The CPU preset on the monkey task. MAX_POLICY_LAG 0: each actor, after sending an episode, waits for the
# learner to finish the gradient work owed up to it, so every env step gets the preset's updates (its learning per env
# step is inline mode's) and the actors overlap only their env steps with the learner's work. With a lag, a learner
# that cannot keep up (on a CPU the actors share) falls ever further behind: measured 2026-12-06 with lag 20 and one
# actor, 42 env steps/s, 2.6 gradient steps per env step and 6 % final success where lockstep learns.
BENCH_OVERRIDES = ("agent.preset=sim_cpu", "learner.mode=ray", "train.wandb=disabled")
MAX_POLICY_LAG = 0


def bench_fleet(env_steps: int = 2000, eval_every_steps: int = 500, curve_episodes: int = 20, eval_episodes: int = 50,
                sizes: Sequence[int] | None = None, overrides: Sequence[str] = (), out_dir: str = "runs/bench-fleet",
                obs: str = "pixels") -> dict:
    """`sizes`: the fleet sizes (FLEET_SIZES), the first the reference; `overrides` (dotted, as for `dsrl-real train`)
    come after the bench's own."""
    start = time.perf_counter()
    sizes = tuple(sizes or FLEET_SIZES)
    out = Path(out_dir) / time.strftime("%Y%m%d-%H%M%S")
    common = [*observation_overrides(obs), *BENCH_OVERRIDES, f"learner.max_policy_lag={MAX_POLICY_LAG}",
              f"train.env_steps={env_steps}", f"train.eval_every_steps={eval_every_steps}", f"train.eval_episodes={curve_episodes}",
              f"train.final_eval_episodes={eval_episodes}"]
    base_cfg = load_config(overrides=[*common, *overrides])
    policy, _, _ = pretrain_from_demos(base_cfg, out / "base")
    checkpoint = out / "base" / "policy" / "policy.msgpack"  # the simulated actors load it in their own processes
    t = base_cfg.train
    result: dict = {"task": base_cfg.task.name, "observations": observation_label(base_cfg), "env_steps_budget": t.env_steps,
                    "max_policy_lag": base_cfg.learner.max_policy_lag,
                    "curve_episodes": t.eval_episodes, "eval_every_steps": t.eval_every_steps, "eval_episodes": t.final_eval_episodes,
                    "agent_preset": base_cfg.agent.preset, "sizes": list(sizes),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(), "out_dir": str(out)}
    curves = []
    for n in sizes:
        label = f"actors_{n}"
        cfg = load_config(overrides=[*common, f"policy.checkpoint={checkpoint}", f"actors.num={n}", f"train.out_dir={out / label}",
                                     *overrides])
        result[label] = _run(cfg, policy)
        curves += [{**r, "label": label} for r in read_records(out / label / "metrics.jsonl") if r["kind"] in ("eval", "final_eval")]
    target = result[f"actors_{sizes[0]}"]["final_success_rate"]
    result["target_success_rate"] = target
    for n in sizes:
        run = result[f"actors_{n}"]
        run["minutes_to_target"] = next((c["minutes"] for c in run["curve"] if c["success_rate"] >= target), None)
    result["learning_curve"] = str(plot_learning_curve(curves, out / "learning_curve.png", f"{base_cfg.task.name}, 1/2/4 actors"))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def _run(cfg, policy) -> dict:
    """One training run with cfg.actors.num actors: its throughput, learning curve and final success."""
    began = time.time()
    run = train_once(cfg, policy)
    records = read_records(Path(cfg.train.out_dir) / "metrics.jsonl")
    last = next((r for r in reversed(records) if r["kind"] == "learner"), {})  # the learner's totals at the run's end
    actors = {a: s["env_steps_per_s"] for a, s in (last.get("actors") or {}).items()}
    curve = [{"env_steps": r["env_steps"], "success_rate": r["success_rate"], "minutes": round((r["time"] - began) / 60, 2)}
             for r in records if r["kind"] in ("eval", "final_eval")]
    return {"final_success_rate": run["final_success_rate"], "final_ci95": run["final_ci95"],
            "env_steps_per_s": actors, "total_env_steps_per_s": round(sum(v or 0.0 for v in actors.values()), 2),
            "actor_episodes": {a: s["episodes"] for a, s in (last.get("actors") or {}).items()},
            "learner_steps_per_s": last.get("learner_steps_per_s"), "curve": curve,
            "wall_s": round(time.time() - began, 1)}
