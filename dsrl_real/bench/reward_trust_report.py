"""What `bench reward-trust`'s report adds per condition to bench learning's (final success per seed, the mean
and its t interval over seeds, the curve): the difference to the truth condition paired by seed with its
t interval, the episodes that needed a human, and the stand-in's audit figures measured in the condition's
runs, pooled over its seeds."""

from __future__ import annotations

from ..analysis.seeds import paired_difference
from ..analysis.stand_in_audit import stand_in_audit
from ..rollout import rate

TRUTH = "truth"  # the condition the others are compared with


def human_over_seeds(per_seed: dict[str, dict]) -> dict:
    """The runs' human counts (reward_trust_runs.human_counts, by seed) summed: needed / training episodes, and with
    verify the share of answered claimed successes the human rejected (the stand-in's false-positive share as the
    human measured it). `needed` is None when a seed's count is unknown."""
    counts = {s: r["human"] for s, r in sorted(per_seed.items(), key=lambda kv: int(kv[0]))}
    episodes = sum(c["training_episodes"] for c in counts.values())
    known = all(c["needed_human"] is not None for c in counts.values())
    needed = sum(c["needed_human"] for c in counts.values()) if known else None
    out = {"labels": next(iter(counts.values()))["human_labels"], "needed": needed, "training_episodes": episodes,
           "share": round(needed / episodes, 4) if known and episodes else None,
           "per_seed": {s: {"needed": c["needed_human"], "training_episodes": c["training_episodes"]} for s, c in counts.items()}}
    if out["labels"] == "verify" and known:
        out["false_positive_share"] = rate(sum(c["claims_rejected"] for c in counts.values()),
                                             sum(c["claims_answered"] for c in counts.values()))
    if not known:
        out["missing"] = {s: c["missing"] for s, c in counts.items() if c["needed_human"] is None}
    return out


def summarize(per_condition: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Per condition ({seed: result}): difference_to_truth (None for truth itself or without truth runs), human,
    stand_in_audit (None for a backend without the stand-in's truth in its labels) and labelled_episodes."""
    truth = {s: r["final_success_rate"] for s, r in per_condition.get(TRUTH, {}).items()}
    out = {}
    for condition, per_seed in per_condition.items():
        rates = {s: r["final_success_rate"] for s, r in per_seed.items()}
        out[condition] = {
            "difference_to_truth": paired_difference(rates, truth) if condition != TRUTH and truth else None,
            "human": human_over_seeds(per_seed),
            "labelled_episodes": sum(r["labelled_episodes"] for r in per_seed.values()),
            "stand_in_audit": stand_in_audit([e for _, r in sorted(per_seed.items(), key=lambda kv: int(kv[0]))
                                              for e in r["stand_in_labels"]]),
        }
    return out
