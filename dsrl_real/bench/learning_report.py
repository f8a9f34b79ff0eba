"""The report of a bench over seeds (`bench learning`, `bench reward-trust`), from the result files of one
or more output folders (one invocation's, or several run apart with --seeds and put together with --merge):
per variant (algorithm, condition) each seed's final success with its Wilson interval, the mean and a
Student t 95 % interval over seeds, what the bench's own `summarize` adds, and the learning curves
(mean ± s.d. over seeds) in a PNG beside report.json."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..analysis.metrics import plot_seed_curves
from ..analysis.seeds import curve_grid, curve_over_seeds, over_seeds
from ..errors import UserError
from .learning_base import BASE_FILE, SETTINGS_FILE, joined_settings, read_json, settings_conflicts, write_json
from .learning_runs import LEARNING, SeedBench, finished_runs

REPORT_FILE = "report.json"
CURVE_FILE = "learning_curve.png"
PER_SEED_KEYS = ("final_success_rate", "final_ci95", "env_steps", "wall_s")
STANDARD_SETTINGS = ("task", "obs", "env_steps_budget", "eval_every_steps", "eval_episodes", "curve_episodes", "overrides")


def _settings(folder: Path, bench: SeedBench) -> dict:
    settings = read_json(folder / SETTINGS_FILE)
    if settings is None:
        raise UserError(f"'{folder}' holds no bench {bench.name} results ({SETTINGS_FILE} is missing); "
                        f"give the --out folder of a `dsrl-real bench {bench.name}` run.")
    return settings


def _machine(runs: list[dict], fallback: dict | None) -> dict | list | None:
    machines = []
    for run in runs:
        if run.get("machine") not in machines:
            machines.append(run.get("machine"))
    return machines[0] if len(machines) == 1 else (machines or fallback)


def build_report(folders: Sequence[Path], seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None,
                 bench: SeedBench = LEARNING) -> dict:
    """The report over the finished runs of `bench` in `folders` (those of `seeds` and `variants` where given).
    The folders must hold the same bench (task, observations, budgets); a seed of a variant may be in one only."""
    folders = [Path(f) for f in folders]
    settings = _settings(folders[0], bench)
    if settings.get("bench", LEARNING.name) != bench.name:
        raise UserError(f"'{folders[0]}' holds a bench {settings.get('bench', LEARNING.name)} run, not bench {bench.name}; "
                        f"give the --out folder of a `dsrl-real bench {bench.name}` run.")
    for folder in folders[1:]:
        other = _settings(folder, bench)
        differ = settings_conflicts(settings, other, " against")
        if differ:
            raise UserError(f"'{folders[0]}' and '{folder}' hold benches with other settings ({'; '.join(sorted(differ))}); "
                            "merge only folders run with the same --task, --obs, budgets and overrides.")
        settings = joined_settings(settings, other)
    bases = [b for b in (read_json(f / BASE_FILE) for f in folders) if b is not None]
    per_variant: dict[str, dict[str, dict]] = {}
    where: dict[tuple[str, int], Path] = {}
    runs = []
    for folder in folders:
        for run in finished_runs(folder):
            variant = run[bench.kind]
            if (seeds is not None and run["seed"] not in seeds) or (variants is not None and variant not in variants):
                continue
            key = (variant, run["seed"])
            if key in where:
                raise UserError(f"Seed {run['seed']} of {variant} is in both '{where[key]}' and '{folder}'; "
                                "merge folders that hold different seeds.")
            where[key] = folder
            runs.append(run)
            per_variant.setdefault(variant, {})[str(run["seed"])] = run
    grid = curve_grid(settings["env_steps_budget"], settings["eval_every_steps"])
    report: dict = {
        "task": settings["task"], "obs": settings["obs"], "observations": bases[0]["observations"] if bases else None,
        **{k: settings[k] for k in ("env_steps_budget", "eval_episodes", "curve_episodes", "eval_every_steps", "overrides")},
        "seeds": sorted({r["seed"] for r in runs}), f"{bench.kind}s": [v for v in bench.variants if v in per_variant],
        **{k: v for k, v in settings.items() if k not in STANDARD_SETTINGS},  # what the bench adds (reward-trust's conditions)
    }
    if len({b["sha256"] for b in bases}) > 1:  # pretrained apart (another machine): each seed's own base was different
        print(f"bench {bench.name}: the folders' base policies differ (pretrained separately); base_success_rate is their mean "
              f"over {len(bases)} folders", file=sys.stderr)
    report.update(base_success_rate=round(sum(b["success_rate"] for b in bases) / len(bases), 4) if bases else None,
                  base_ci95=bases[0]["ci95"] if len({b["sha256"] for b in bases}) == 1 else None,
                  base_policies=len({b["sha256"] for b in bases}))
    extra = bench.summarize(per_variant) if bench.summarize else {}
    for variant in report[f"{bench.kind}s"]:
        per_seed = per_variant[variant]
        report[variant] = {**over_seeds({s: {k: r[k] for k in PER_SEED_KEYS} for s, r in per_seed.items()}),
                           **extra.get(variant, {}), "curve": curve_over_seeds([r["curve"] for r in per_seed.values()], grid)}
    report["runs_wall_s"] = round(sum(r["wall_s"] for r in runs), 1)
    report["machine"] = _machine(runs, bases[0]["machine"] if bases else None)
    return report


def write_report(out: Path, report: dict, bench: SeedBench = LEARNING) -> dict:
    """report.json and learning_curve.png into `out`; the report with the PNG's path."""
    curves = {v: report[v]["curve"] for v in report[f"{bench.kind}s"]}
    title = f"{report['task']}, {report['obs']}, {len(report['seeds'])} seed{'s' if len(report['seeds']) != 1 else ''}"
    report = {**report, "learning_curve": str(plot_seed_curves(curves, out / CURVE_FILE, title))}
    write_json(out / REPORT_FILE, report)
    return report


def merged_wall_s(folders: Sequence[Path]) -> float | None:
    """The longest wall time among the folders' own reports: merged benches ran side by side."""
    walls = [r["wall_s"] for r in (read_json(Path(f) / REPORT_FILE) for f in folders) if r and r.get("wall_s") is not None]
    return max(walls) if walls else None
