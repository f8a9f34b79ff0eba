"""The errors of the stand-in reward model (rewards/stand_in.py, backend sim_reward_model) as measured in a
run, from its own labels: each label's raw carries the simulator's truth (truth_success, and the failed
episode's closeness_score, the simulated human's 1-5 score of its final state). Against that truth as the
reference (score 5 for a success, the closeness for a failure), the figures mean what `dsrl-real audit`'s
mean with the human as the reference (analysis/audit.py's helpers compute them): the false-positive rate,
overall and by the reference's score 1-4, the false-negative rate, the score's mean absolute error, and the
score error rate (the share of the episodes both call failures whose scores differ), each with its counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..rollout import rate
from .audit import RESAMPLES, bootstrap_interval, false_positive_by_reference_score, mean_absolute_error

TRUTH_FIELDS = ("truth_success", "closeness_score")  # in the stand-in's raw


def label_entry(score: Any) -> dict | None:
    """What the audit keeps of one label (an EpisodeScore): the truth and what the backend said; None for a
    label without the stand-in's truth fields (another backend's)."""
    raw = getattr(score, "raw", None)
    if not isinstance(raw, dict) or not all(raw.get(k) is not None for k in TRUTH_FIELDS):
        return None
    return {"truth_success": bool(raw["truth_success"]), "closeness_score": int(raw["closeness_score"]),
            "success": bool(score.success), "score": score.score}


def _truth_score(entry: dict) -> int:
    return 5 if entry["truth_success"] else entry["closeness_score"]


def stand_in_audit(entries: Sequence[dict], resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any] | None:
    """The figures over `entries` (label_entry's, of one run or pooled over runs); None without any."""
    if not entries:
        return None
    failures = [e for e in entries if not e["truth_success"]]
    successes = [e for e in entries if e["truth_success"]]
    pairs = [({"score": _truth_score(e), "success": e["truth_success"]}, {"score": e["score"], "success": e["success"]})
             for e in entries]
    scored = [e for e in entries if e["score"] is not None]
    truth, said = (np.asarray(v, float) for v in ([_truth_score(e) for e in scored], [e["score"] for e in scored]))
    both_fail = [e for e in failures if not e["success"] and e["score"] is not None]
    return {
        "episodes": len(entries),
        "false_positive_rate": rate(sum(e["success"] for e in failures), len(failures)),
        "false_positive_by_score": false_positive_by_reference_score(pairs),
        "false_negative_rate": rate(sum(not e["success"] for e in successes), len(successes)),
        "score_mae": {"value": float(mean_absolute_error(truth, said)) if scored else None,
                      "ci95": bootstrap_interval(mean_absolute_error, [truth, said], resamples, seed) if scored else None,
                      "n": len(scored)},
        "score_error_rate": rate(sum(e["score"] != e["closeness_score"] for e in both_fail), len(both_fail)),
    }
