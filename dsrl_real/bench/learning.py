"""`dsrl-real bench learning`: DSRL-SAC, DSRL-NA and action-space SAC on a simulated task over several seeds;
and the driver it shares with `bench reward-trust` (`run_seed_bench`, `merge_seed_bench`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..config import load_config
from ..config.observations import OBSERVATIONS, observation_overrides
from ..errors import UserError
from .learning_base import ensure_base, policy_file
from .learning_report import build_report, merged_wall_s, write_report
from .learning_runs import ALGORITHMS, LEARNING, LEARNING_BY_OBS, RunSpec, SeedBench, finished, run_all

DEFAULT_OUT = "runs/bench-learning"
TASKS = ("monkey", "drawer")
DEFAULT_SEEDS = (0, 1, 2)
# From pixels, the RoboReward paper's real WidowX budget; from state, the budget of this project's earlier state benches.
DEFAULT_ENV_STEPS = {"pixels": 6000, "state": 5000}


def check_choices(*checks: tuple[str, str | None, Sequence[str]]) -> None:
    """(kind, the first unknown value or None, the known ones): one sentence for the first unknown."""
    for kind, value, known in checks:
        if value is not None:
            raise UserError(f"Unknown {kind} {value!r}; use one of {', '.join(known)}.")


def budget_overrides(env_steps: int, eval_every_steps: int, eval_episodes: int, curve_episodes: int) -> list[str]:
    """The runs' budgets, with no wandb and no recording (the benches read metrics.jsonl and the results)."""
    return ["train.wandb=disabled", "train.record=false", f"train.env_steps={env_steps}", f"train.eval_every_steps={eval_every_steps}",
            f"train.eval_episodes={curve_episodes}", f"train.final_eval_episodes={eval_episodes}"]


def merge_seed_bench(bench: SeedBench, merge: Sequence[str], out: str | None, default_out: str, seeds: Sequence[int] | None,
                     variants: Sequence[str] | None) -> dict:
    """No runs: the report over these folders' results (of every seed and variant there unless given), into `out`
    (default `default_out`/TASK-OBS-merged)."""
    folders = [Path(f) for f in merge]
    report = build_report(folders, seeds=seeds, variants=variants, bench=bench)
    target = Path(out or f"{default_out}/{report['task']}-{report['obs']}-merged")
    return write_report(target, {**report, "merged_from": [str(f) for f in folders], "wall_s": merged_wall_s(folders),
                                 "out_dir": str(target)}, bench)


def run_seed_bench(bench: SeedBench, target: Path, settings: dict, common: Sequence[str], overrides: Sequence[str],
                   seeds: Sequence[int], variants: Sequence[str], jobs: int) -> dict:
    """Each of `variants` on every seed from one base policy pretrained into `target`, finished runs kept and
    skipped, then the report. `settings` (task, obs first; what else the bench names, after) go into bench.json
    with the budgets as `common` and the command line's `overrides` left them; each variant's config is checked
    before anything runs."""
    start = time.perf_counter()
    t = load_config(overrides=[*common, *overrides]).train  # the budgets as the overrides left them
    head = {k: settings[k] for k in ("task", "obs")}
    settings = {**head, "env_steps_budget": t.env_steps, "eval_every_steps": t.eval_every_steps,
                "eval_episodes": t.final_trials, "curve_episodes": t.eval_episodes,
                "overrides": list(overrides), **{k: v for k, v in settings.items() if k not in head}}
    for variant in variants:  # a variant its config refuses fails here, not after the others' runs
        load_config(overrides=[*common, *bench.overrides(variant, target), *overrides])
    ensure_base(target, [*common, *overrides], settings, settings["eval_episodes"], bench.name)
    pending = [RunSpec(v, s, str(target), (*common, f"policy.checkpoint={policy_file(target)}"), tuple(overrides), bench)
               for s in seeds for v in variants if finished(target, v, s) is None]
    run_all(pending, jobs)
    report = build_report([target], seeds=seeds, variants=variants, bench=bench)
    return write_report(target, {**report, "skipped_finished_runs": len(seeds) * len(variants) - len(pending),
                                 "wall_s": round(time.perf_counter() - start, 1), "out_dir": str(target)}, bench)


def bench_learning(obs: str = "pixels", task: str = "monkey", seeds: Sequence[int] | None = None,
                   algorithms: Sequence[str] | None = None, jobs: int = 1, out: str | None = None,
                   merge: Sequence[str] = (), env_steps: int | None = None, eval_every_steps: int = 1000, eval_episodes: int = 50,
                   curve_episodes: int = 20, overrides: Sequence[str] = ()) -> dict:
    """DSRL-SAC, DSRL-NA and action-space SAC (`algorithms`) on the simulated `task` with `obs` observations
    (sparse success reward, CPU preset; DSRL-NA on sim_cpu_na; from state LEARNING_BY_OBS's settings), each on
    every seed in `seeds` (run.seed and agent.seed; default 0, 1, 2), from one base policy pretrained into `out`
    and on the same step budget (`env_steps`; default DEFAULT_ENV_STEPS[obs]). Each run's final
    success takes `eval_episodes` trials, the base policy's too, the learning curve's periodic evaluations
    `curve_episodes`. `jobs` > 1 runs seed x algorithm runs in that many single-threaded worker processes.
    Finished runs in `out` are kept and skipped. `merge`: no runs, the report over these folders' results
    instead (of every seed and algorithm there unless `seeds` or `algorithms` is given). `overrides` (dotted, as for `dsrl-real train`) come after the bench's own."""
    if merge:
        return merge_seed_bench(LEARNING, merge, out, DEFAULT_OUT, seeds, algorithms)
    seeds, algorithms = list(DEFAULT_SEEDS if seeds is None else seeds), list(ALGORITHMS if algorithms is None else algorithms)
    check_choices(("algorithm", next((a for a in algorithms if a not in ALGORITHMS), None), ALGORITHMS),
                  ("task", None if task in TASKS else task, TASKS),
                  ("observation mode", None if obs in OBSERVATIONS else obs, OBSERVATIONS))
    common = [*observation_overrides(obs), "agent.preset=sim_cpu", f"task.name={task}",
              *budget_overrides(env_steps or DEFAULT_ENV_STEPS[obs], eval_every_steps, eval_episodes, curve_episodes)]
    bench = LEARNING_BY_OBS[obs]
    settings = {"task": task, "obs": obs, "algorithm_overrides": {name: list(o) for name, o in bench.variants.items()}}
    return run_seed_bench(bench, Path(out or f"{DEFAULT_OUT}/{task}-{obs}"), settings, common, overrides, seeds, algorithms, jobs)
