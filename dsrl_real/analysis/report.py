"""`dsrl-real report RUN_DIR`: what a run did, from its metrics (metrics.jsonl) and its recorded
episodes: the learning curve, success over time per episode kind, the reward backends' agreement
with the human (the audit's summary), robot time used and safety interventions, how long the
robot waited for the learner (robot_idle.py) and, for a verify-positives run, what the human's answers
measured of the reward backend (verify_summary.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from ..errors import UserError
from ..recording.layout import write_json
from ..recording.reader import RecordedRun, is_recording
from ..rollout import success_summary
from .audit import AuditError, audit_run, problems_caption
from .audit import summary as audit_summary
from .metrics import save_figure
from .robot_idle import robot_summary
from .run_dir import find_run
from .verify_summary import verify_line, verify_summary

ROLLING_WINDOW = 10
AUDIT_RESAMPLES = 1000


class ReportError(UserError, ValueError):
    """Nothing to report on; the message says what the folder should hold."""


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut off by a crash
    return records


def _kind_summary(records: list[dict]) -> dict[str, Any]:
    complete = [r for r in records if not r.get("partial")]
    successes = sum(bool(r.get("success")) for r in complete)
    return {
        **success_summary(successes, len(complete)),  # over complete episodes: a partial one has no outcome
        "episodes": len(records), "partial": len(records) - len(complete), "successes": successes,
        "env_steps": sum(int(r.get("steps", 0)) for r in records),
        "robot_time_s": round(sum(float(r.get("wall_time_s") or 0.0) for r in records), 3),
        "safety_interventions": sum(int(r.get("safety_interventions", 0)) for r in records),
        "overruns": sum(int(r.get("overruns", 0)) for r in records),
    }


def _rolling(successes: list[bool], window: int) -> list[float]:
    values = np.asarray(successes, float)
    return [float(values[max(0, i + 1 - window): i + 1].mean()) for i in range(len(values))]


def summarize_run(run_dir: str | Path) -> dict[str, Any]:
    run_dir = find_run(run_dir, ReportError)
    metrics = read_metrics(run_dir)
    if not metrics and not is_recording(run_dir):
        raise ReportError(f"'{run_dir}' holds neither recorded episodes (meta/run.json) nor metrics.jsonl; "
                          "give a run's output folder, e.g. train.out_dir.")
    out: dict[str, Any] = {"run_dir": str(run_dir)}
    out["learning_curve"] = [
        {"env_steps": r.get("env_steps", r["step"]), "success_rate": r["success_rate"], "ci95": r.get("ci95"),
         "label": r.get("label", ""), "final": r["kind"] == "final_eval"}
        for r in metrics if r.get("kind") in ("eval", "final_eval") and "success_rate" in r]
    out["training_episodes"] = [{"env_steps": r["step"], "reward": r.get("reward"), "success": r.get("success")}
                                for r in metrics if r.get("kind") == "episode"]
    out["robot"] = robot_summary(metrics)  # None for a run without the fields
    out["verify"] = run_verify_summary(metrics)  # None for a run without verify-positives
    run = RecordedRun(run_dir) if is_recording(run_dir) else None
    records = run.records if run is not None else []
    # What the run observed (the trainer's label; with object_state it says "privileged, simulation only"); None
    # for a run recorded before runs said so.
    evals = [r["observations"] for r in metrics if r.get("kind") in ("eval", "final_eval") and "observations" in r]
    out["observations"] = (run.run_meta.get("meta", {}).get("observations") if run is not None else None) or \
        (evals[-1] if evals else None)
    out["file_problems"] = run.check_files() if run is not None else []  # named; the summary goes on from the records
    kinds = sorted({r.get("kind") or "unknown" for r in records})
    out["kinds"] = {k: _kind_summary([r for r in records if (r.get("kind") or "unknown") == k]) for k in kinds}
    out["total"] = _kind_summary(records)
    out["robot_time_s"] = out["total"]["robot_time_s"]
    over_time: dict[str, Any] = {}
    steps = 0
    for kind in kinds:
        over_time[kind] = {"episode": [], "env_steps": [], "success": []}
    for r in records:
        steps += int(r.get("steps", 0))
        if r.get("partial"):
            continue
        series = over_time[r.get("kind") or "unknown"]
        series["episode"].append(r["episode_index"])
        series["env_steps"].append(steps)
        series["success"].append(bool(r.get("success")))
    for series in over_time.values():
        series[f"rolling_{ROLLING_WINDOW}"] = _rolling(series["success"], ROLLING_WINDOW)
    out["success_over_time"] = over_time
    out["timeline"] = {"episode": [r["episode_index"] for r in records],
                       "robot_time_s": np.cumsum([float(r.get("wall_time_s") or 0.0) for r in records]).round(3).tolist(),
                       "safety_interventions": np.cumsum([int(r.get("safety_interventions", 0)) for r in records]).tolist()}
    if records:
        try:
            audit = audit_run(run_dir, resamples=AUDIT_RESAMPLES, check_files=False)
            if "verify_positives" in audit:  # human labels only where a claim was checked: no agreement to speak of
                out["agreement"] = {"note": "A verify-positives run: the human labelled only the episodes they were asked "
                                            "about, so the agreement figures are left to `dsrl-real audit`; the "
                                            "verify-positives line gives what their answers measured."}
            else:
                out["agreement"] = {"reference": audit["reference"], "labelled_episodes": audit["labelled_episodes"],
                                    "backends": audit_summary(audit)}
        except AuditError as err:
            out["agreement"] = {"note": str(err)}
    else:
        out["agreement"] = {"note": "No recorded episodes, so no labels to compare."}
    return out


def run_verify_summary(metrics: list[dict]) -> dict | None:
    """verify_summary over the episode records' verifications, with the run's threshold and backend (None without)."""
    episodes = [r for r in metrics if r.get("kind") == "episode" and "verification" in r]
    if not episodes:
        return None
    last = episodes[-1].get("verify_summary", {})
    return verify_summary([r["verification"] for r in episodes], last.get("warn_false_positive_rate"),
                          last.get("backend", "the reward backend"))


def verify_report_lines(summary: dict) -> list[str]:
    """A verify-positives run's numbers and, past the threshold, its warning (nothing for other runs)."""
    v = summary.get("verify")
    if v is None:
        return []
    return [f"Verify positives ({v['backend']}): {verify_line(v)}."] + ([v["warning"]] if v["warning"] else [])


def report_table(summary: dict):
    observations = summary.get("observations")
    title = f"Run {summary['run_dir']}" + (f"\nobservations: {observations}" if observations else "")
    table = Table(title=title, caption=problems_caption(summary.get("file_problems", [])), caption_justify="left")
    table.add_column("kind", no_wrap=True, min_width=10)
    for column in ("episodes", "partial", "success [95% CI]", "env steps", "robot min", "safety", "overruns"):
        table.add_column(column, justify="right")
    rows = list(summary["kinds"].items()) + ([("total", summary["total"])] if summary["kinds"] else [])
    for kind, s in rows:
        lo, hi = s["ci95"]
        table.add_row(kind, str(s["episodes"]), str(s["partial"]), f"{s['success_rate']:.0%} [{lo * 100:.0f}-{hi * 100:.0f}%]",
                      str(s["env_steps"]), f"{s['robot_time_s'] / 60:.1f}", str(s["safety_interventions"]), str(s["overruns"]))
    return table


def robot_table(summary: dict) -> Table | None:
    """The robot's time against the learner's after the warm start (None for a run whose records lack it)."""
    robot = summary.get("robot")
    if robot is None:
        return None
    table = Table(title="The robot and the learner, after the warm start")
    for column in ("episodes", "env steps", "robot idle", "grad steps / env step", "policy lag mean", "policy lag max",
                   "env steps/s", "loop min"):
        table.add_column(column, justify="right")
    speed, wall = robot["env_steps_per_s"], robot["wall_s"]
    table.add_row(str(robot["episodes"]), str(robot["env_steps"]), f"{robot['robot_idle_fraction']:.1%}",
                  f"{robot['grad_steps_per_env_step']:.2f}", f"{robot['policy_lag']['mean']:.2f}", str(robot["policy_lag"]["max"]),
                  "-" if speed is None else f"{speed:.2f}", "-" if wall is None else f"{wall / 60:.1f}")
    return table


def actors_table(summary: dict) -> Table | None:
    """learner.mode=ray: each actor's throughput and the learner's, as the learner last counted them (None without)."""
    robot = summary.get("robot") or {}
    actors = robot.get("actors")
    if not actors:
        return None
    table = Table(title="Each actor and the learner")
    for column in ("actor", "episodes", "env steps", "env steps/s", "success", "learner steps/s"):
        table.add_column(column, justify="right")
    for actor_id, a in actors.items():
        table.add_row(actor_id, str(a["episodes"]), str(a["env_steps"]), "-" if a["env_steps_per_s"] is None else f"{a['env_steps_per_s']:.2f}",
                      f"{a['success_rate']:.0%}", "")
    pace = robot.get("learner_steps_per_s")
    table.add_row("learner", "", "", "", "", "-" if pace is None else f"{pace:.2f}")
    return table


def agreement_lines(summary: dict) -> list[str]:
    agreement = summary["agreement"]
    if "note" in agreement:
        return [agreement["note"]]
    lines = [f"Agreement with the {agreement['reference']} over {agreement['labelled_episodes']} labelled episodes:"]
    for name, m in agreement["backends"].items():
        def show(v, pct=False):
            return "-" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")
        lines.append(f"  {name}: MAE {show(m['mae'])}, false positives {show(m['false_positive_rate'], True)}, "
                     f"false negatives {show(m['false_negative_rate'], True)}, Kendall tau {show(m['kendall_tau'])}, "
                     f"pairwise {show(m['pairwise_accuracy'], True)}")
    curve = summary["learning_curve"]
    if curve:
        last = curve[-1]
        lines.append(f"Last evaluation: {last['success_rate']:.0%} success at {last['env_steps']} env steps.")
    return lines


def plot_report(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    if summary.get("observations"):
        fig.suptitle(f"observations: {summary['observations']}", fontsize=9)
    ax = axes[0, 0]
    for label in sorted({r["label"] for r in summary["learning_curve"]}):
        rows = [r for r in summary["learning_curve"] if r["label"] == label]
        steps = [r["env_steps"] for r in rows]
        ax.plot(steps, [r["success_rate"] for r in rows], marker="o", label=label or None)
        if all(r.get("ci95") for r in rows):
            ax.fill_between(steps, [r["ci95"][0] for r in rows], [r["ci95"][1] for r in rows], alpha=0.2)
    ax.set(title="evaluation success (metrics.jsonl)", xlabel="environment steps", ylabel="success rate", ylim=(-0.02, 1.02))
    if not summary["learning_curve"]:
        ax.text(0.5, 0.5, "no evaluations logged", ha="center", va="center", transform=ax.transAxes)
    ax = axes[0, 1]
    for kind, series in summary["success_over_time"].items():
        if series["episode"]:
            ax.plot(series["env_steps"], series[f"rolling_{ROLLING_WINDOW}"], marker=".", label=kind)
    ax.set(title=f"success over time (recorded episodes, rolling {ROLLING_WINDOW})", xlabel="environment steps",
           ylabel="success rate", ylim=(-0.02, 1.02))
    if any(s["episode"] for s in summary["success_over_time"].values()):
        ax.legend()
    ax = axes[1, 0]
    timeline = summary["timeline"]
    ax.plot(timeline["episode"], np.asarray(timeline["robot_time_s"]) / 60, color="tab:green")
    ax.set(title=f"robot time {summary['robot_time_s'] / 60:.1f} min, {summary['total']['safety_interventions']} safety interventions",
           xlabel="episode", ylabel="robot time (min, cumulative)")
    ax.yaxis.label.set_color("tab:green")
    twin = ax.twinx()
    twin.plot(timeline["episode"], timeline["safety_interventions"], color="tab:red")
    twin.set_ylabel("safety interventions (cumulative)", color="tab:red")
    ax = axes[1, 1]
    agreement = summary["agreement"]
    if "backends" in agreement:
        names = list(agreement["backends"])
        keys = ["false_positive_rate", "false_negative_rate", "pairwise_accuracy", "kendall_tau"]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            values = [agreement["backends"][name][k] if agreement["backends"][name][k] is not None else np.nan for k in keys]
            ax.bar(np.arange(len(keys)) + i * width, values, width, label=name)
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, ["false pos.", "false neg.", "pairwise acc.", "Kendall tau"])
        ax.set(title=f"agreement with the {agreement['reference']}", ylim=(-1, 1))
        ax.legend()
    else:
        ax.text(0.5, 0.5, "\n".join(_wrap(agreement["note"], 60)), ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set(title="reward-backend agreement", xticks=[], yticks=[])
    return save_figure(fig, path)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[dict, Path, Path]:
    summary = summarize_run(run_dir)
    out = Path(out_dir) if out_dir else Path(summary["run_dir"])
    json_path = out / "report.json"
    write_json(json_path, summary)
    return summary, json_path, plot_report(summary, out / "report.png")
