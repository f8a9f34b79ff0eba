"""The standard columns of a recorded row (the recorder's hook, rollout/record.py, writes one per
env step, then the final observation's)."""

from __future__ import annotations

from typing import Any

import numpy as np


def step_columns(obs: dict, info: dict, *, action=None, reward=None, step_info: dict | None = None,
                 step_time_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """The standard columns of one row: observation o_t (and `info` from when it was observed),
    and, if an action was taken from it, the action, its reward and what the step reported
    (`step_info`: safety intervention, refusal, overrun of the control period)."""
    columns: dict[str, Any] = {"observation": obs, "stage": int(info.get("stage", 0))}
    if "progress" in info:  # simulator ground truth
        columns["truth"] = {"progress": float(info["progress"]), "success": bool(info.get("success", False))}
    if action is not None:
        columns.update(action=np.asarray(action, np.float32), reward=None if reward is None else float(reward))
        if step_info is not None:
            columns["safety_intervened"] = bool(step_info.get("safety_intervened", False))
            columns["refused"] = bool(step_info.get("refused", False))
            if "overruns" in step_info:
                columns["overrun"] = step_info["overruns"] > info.get("overruns", 0)
        if step_time_s is not None:
            columns["step_time_s"] = float(step_time_s)
    columns.update(extra)
    return columns
