"""The robot's time against the learner's, as the trainer's episode records (metrics.jsonl) carry it, in either
learner mode: `robot_wait_s`, how long the robot stood reset and waiting for the learner at the boundary before
the episode; `robot_wall_s`, the loop's wall time for the episode (from the boundary, where the learner's cycle
starts beside the reset, to the episode's end); `robot_idle_fraction`, the one over the other;
`gradient_steps_per_env_step`, the learner's gradient steps since the previous record per env step of this
episode; `policy_lag`, the learner versions the acting parameters trailed the episodes sent (0 inline).

In learner.mode=ray the records also carry the learner's counts at that episode: `actors`, each actor's
episodes, env steps, env steps per second and success rate (remote_learner.ActorTally), and
`learner_steps_per_s`, its gradient steps per second; a finished run ends with a `learner` record of its totals.

`robot_summary` sums them over the episodes after the warm start (`dsrl-real report` and `dsrl-real bench
robot-idle`); `progress_line` shows one episode's on the live progress line of `dsrl-real train`."""

from __future__ import annotations

from typing import Any


def robot_fields(wait_s: float, wall_s: float, policy_lag: int) -> dict[str, Any]:
    """An episode record's robot fields, from the robot's wait for the learner and the loop's wall time."""
    return {"policy_lag": policy_lag, "robot_idle_fraction": wait_s / max(wall_s, 1e-9), "robot_wait_s": round(wait_s, 4),
            "robot_wall_s": round(wall_s, 4)}


def robot_summary(records: list[dict]) -> dict[str, Any] | None:
    """Over a run's episode records after the warm start that carry the robot fields (None when none do),
    up to its last episode when the run finished (a final_eval record): that one was absorbed at the run's
    end, and in learner.mode=ray its gradient steps include all the work the end waits for, which no robot
    waited for. `robot_idle_fraction` (the waits over the wall time; the mean of the episodes' fractions for
    records without the seconds), `grad_steps_per_env_step` (the learner's gradient steps over the env
    steps: its pace beside the robot), `policy_lag` (mean, max), `env_steps_per_s` and `wall_s` (the
    loop's, None without the seconds)."""
    episodes = [r for r in records if r.get("kind") == "episode"]
    if any(r.get("kind") == "final_eval" for r in records):
        episodes = episodes[:-1]
    episodes = [r for r in episodes if not r.get("warm_start") and "robot_idle_fraction" in r and "gradient_steps_per_env_step" in r]
    if not episodes:
        return None
    steps = sum(int(r["length"]) for r in episodes)
    lags = [int(r["policy_lag"]) for r in episodes]
    timed = all("robot_wall_s" in r and "robot_wait_s" in r for r in episodes)
    wall = sum(float(r["robot_wall_s"]) for r in episodes) if timed else None
    if timed:
        idle = sum(float(r["robot_wait_s"]) for r in episodes) / max(wall, 1e-9)
    else:
        idle = sum(float(r["robot_idle_fraction"]) for r in episodes) / len(episodes)
    gradient_steps = sum(float(r["gradient_steps_per_env_step"]) * int(r["length"]) for r in episodes)
    # learner.mode=ray: the learner's latest counts (its totals at a finished run's end)
    last = next((r for r in reversed(records) if r.get("kind") == "learner" or (r in episodes and "actors" in r)), {})
    return {"episodes": len(episodes), "env_steps": steps, "robot_idle_fraction": round(idle, 4),
            "grad_steps_per_env_step": round(gradient_steps / max(steps, 1), 4), "gradient_steps": round(gradient_steps),
            "policy_lag": {"mean": round(sum(lags) / len(lags), 4), "max": max(lags)},
            "env_steps_per_s": round(steps / wall, 4) if timed and wall > 0 else None,
            "wall_s": round(wall, 3) if timed else None,
            "actors": last.get("actors"), "learner_steps_per_s": last.get("learner_steps_per_s")}


def progress_line(label: str, record: dict, ray: bool) -> str:
    """The live progress line's description after an episode: the robot's idle share of it, and in
    learner.mode=ray the policy lag it acted with."""
    line = f"{label} · robot idle {record['robot_idle_fraction']:.0%}"
    if not ray:
        return line
    line = f"{line} · lag {record['policy_lag']}"
    actors = record.get("actors") or {}
    if len(actors) > 1:
        pace = sum(a["env_steps_per_s"] or 0.0 for a in actors.values())
        line = f"{line} · {len(actors)} actors {pace:.1f} env steps/s"
    if record.get("learner_steps_per_s") is not None:
        line = f"{line} · learner {record['learner_steps_per_s']:.1f} steps/s"
    return line
