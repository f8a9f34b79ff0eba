"""`dsrl-real bench learning`: DSRL-SAC, DSRL-NA and action-space SAC on a simulated task over several seeds."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..config import load_config
from ..config.observations import OBSERVATIONS, observation_overrides
from ..errors import UserError
from .learning_base import ensure_base, policy_file
from .learning_report import build_report, merged_wall_s, write_report
from .learning_runs import ALGORITHMS, RunSpec, finished, run_all

DEFAULT_OUT = "runs/bench-learning"
TASKS = ("monkey", "drawer")
DEFAULT_SEEDS = (0, 1, 2)


def bench_learning(obs: str = "pixels", task: str = "monkey", seeds: Sequence[int] | None = None,
                   algorithms: Sequence[str] | None = None, jobs: int = 1, out: str | None = None,
                   merge: Sequence[str] = (), env_steps: int = 5000, eval_every_steps: int = 1000, eval_episodes: int = 50,
                   curve_episodes: int = 20, overrides: Sequence[str] = ()) -> dict:
    """DSRL-SAC, DSRL-NA and action-space SAC (`algorithms`) on the simulated `task` with `obs` observations
    (sparse success reward, CPU preset; DSRL-NA on sim_cpu_na), each on every seed in `seeds` (run.seed and
    agent.seed; default 0, 1, 2), from one base policy pretrained into `out` and on the same step budget. Each run's final
    success takes `eval_episodes` trials, the base policy's too, the learning curve's periodic evaluations
    `curve_episodes`. `jobs` > 1 runs seed x algorithm runs in that many single-threaded worker processes.
    Finished runs in `out` are kept and skipped. `merge`: no runs, the report over these folders' results
    instead (of every seed and algorithm there unless `seeds` or `algorithms` is given). `overrides` (dotted, as for `dsrl-real train`) come after the bench's own."""
    start = time.perf_counter()
    if merge:
        folders = [Path(f) for f in merge]
        report = build_report(folders, seeds=seeds, algorithms=algorithms)
        target = Path(out or f"{DEFAULT_OUT}/{report['task']}-{report['obs']}-merged")
        return write_report(target, {**report, "merged_from": [str(f) for f in folders], "wall_s": merged_wall_s(folders),
                                     "out_dir": str(target)})
    seeds, algorithms = list(DEFAULT_SEEDS if seeds is None else seeds), list(ALGORITHMS if algorithms is None else algorithms)
    for kind, value, known in (("algorithm", next((a for a in algorithms if a not in ALGORITHMS), None), ALGORITHMS),
                               ("task", None if task in TASKS else task, TASKS),
                               ("observation mode", None if obs in OBSERVATIONS else obs, OBSERVATIONS)):
        if value is not None:
            raise UserError(f"Unknown {kind} {value!r}; use one of {', '.join(known)}.")
    target = Path(out or f"{DEFAULT_OUT}/{task}-{obs}")
    common = [*observation_overrides(obs), "agent.preset=sim_cpu", f"task.name={task}", "train.wandb=disabled", "train.record=false",
              f"train.env_steps={env_steps}", f"train.eval_every_steps={eval_every_steps}", f"train.eval_episodes={curve_episodes}",
              f"train.final_eval_episodes={eval_episodes}"]
    t = load_config(overrides=[*common, *overrides]).train  # the budgets as the overrides left them
    settings = {"task": task, "obs": obs, "env_steps_budget": t.env_steps, "eval_every_steps": t.eval_every_steps,
                "eval_episodes": t.final_eval_episodes or t.eval_episodes, "curve_episodes": t.eval_episodes,
                "overrides": list(overrides)}
    ensure_base(target, [*common, *overrides], settings, settings["eval_episodes"])
    pending = [RunSpec(a, s, str(target), (*common, f"policy.checkpoint={policy_file(target)}"), tuple(overrides))
               for s in seeds for a in algorithms if finished(target, a, s) is None]
    run_all(pending, jobs)
    report = build_report([target], seeds=seeds, algorithms=algorithms)
    return write_report(target, {**report, "skipped_finished_runs": len(seeds) * len(algorithms) - len(pending),
                                 "wall_s": round(time.perf_counter() - start, 1), "out_dir": str(target)})
