"""What verify-positives (reward.verify, rewards/verify.py) measured about the reward backend.

Each episode's entry says what the human was asked ("verify": claimed_success, failure_check or None) and
answered ("answer": the key, None without one in time). `verify_summary` counts: the episodes that needed
a human (asked, answered or not), verified (answered) and unverified ones; among the answered claimed
successes, the rejected ones: the backend's false-positive share, with its 95% Wilson interval, and its
precision; among the answered failure checks, those the human called a success: the false-negative
share. Past reward.verify_warn_false_positive_rate it warns in one sentence. The trainer shows it on the
live progress line and writes it into metrics.jsonl's episode records (`verify_summary`, beside each
episode's `verification`); `dsrl-real report` reads those, `dsrl-real audit` the recording's training labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..rewards.verify import CLAIMED_SUCCESS, FAILURE_CHECK, REJECTED
from ..rollout import rate


def verify_summary(entries: Iterable[dict], warn_rate: float | None = None, backend: str = "the reward backend") -> dict[str, Any]:
    """The counts and shares of `entries` (one per episode, as Verification.fields() gives them)."""
    entries = list(entries)
    asked = [e for e in entries if e.get("verify")]
    claims = [e for e in asked if e["verify"] == CLAIMED_SUCCESS and e.get("answer")]
    checks = [e for e in asked if e["verify"] == FAILURE_CHECK and e.get("answer")]
    rejected = sum(e["answer"] == REJECTED for e in claims)
    answered = len(claims) + len(checks)
    out = {"backend": backend, "episodes": len(entries), "needed_human": len(asked),
           "needed_human_share": len(asked) / len(entries) if entries else None,
           "verified": answered, "unverified": len(asked) - answered,
           "claimed_successes": sum(e["verify"] == CLAIMED_SUCCESS for e in asked), "rejected": rejected,
           "false_positive_share": rate(rejected, len(claims)), "precision": rate(len(claims) - rejected, len(claims)),
           "failure_checks": sum(e["verify"] == FAILURE_CHECK for e in asked),
           "false_negative_share": rate(sum(e["answer"] == "s" for e in checks), len(checks)),
           "warn_false_positive_rate": warn_rate}
    out["warning"] = warning(out)
    return out


def warning(summary: dict) -> str | None:
    """One sentence when the false-positive share passes the summary's threshold, else None."""
    fp, threshold = summary["false_positive_share"], summary["warn_false_positive_rate"]
    if threshold is None or fp["value"] is None or fp["value"] <= threshold:
        return None
    lo, hi = fp["ci95"]
    return (f"The human rejected {fp['count']} of the {fp['n']} successes {summary['backend']} claimed, a false-positive "
            f"share of {fp['value']:.0%} (95% CI {lo:.0%}-{hi:.0%}) above reward.verify_warn_false_positive_rate = "
            f"{threshold:.0%}, so its successes cannot be trusted without a human.")


def _share(metric: dict) -> str:
    if metric["value"] is None:
        return "-"
    lo, hi = metric["ci95"]
    return f"{metric['value']:.0%} [{lo:.0%}-{hi:.0%}]"


def verify_line(summary: dict) -> str:
    """The numbers in one line: verified, rejected, the false-positive share (and the false-negative one when
    failures were checked), the episodes that needed a human, and past the threshold a short warning (the
    whole sentence is the summary's `warning`)."""
    line = f"verified {summary['verified']}"
    if summary["unverified"]:
        line += f" ({summary['unverified']} unanswered)"
    fp = summary["false_positive_share"]
    line += f" · rejected {summary['rejected']}/{fp['n']} claimed, FP {_share(fp)}"
    fn = summary["false_negative_share"]
    if fn["n"]:
        line += f" · FN {_share(fn)} of {fn['n']} checked"
    line += f" · human {summary['needed_human']}/{summary['episodes']} episodes"
    if summary["warning"]:
        line += f" · WARNING: false positives above {summary['warn_false_positive_rate']:.0%}"
    return line


class VerifyTally:
    """A run's summary so far, episode by episode (the trainer's, for its progress line and metrics records)."""

    def __init__(self, backend: str, warn_rate: float, entries: Iterable[dict] = ()):
        self.backend, self.warn_rate = backend, warn_rate
        self.entries = list(entries)
        self.summary = verify_summary(self.entries, warn_rate, backend)

    def add(self, entry: dict) -> dict:
        """Count one more episode; the new summary."""
        self.entries.append(entry)
        self.summary = verify_summary(self.entries, self.warn_rate, self.backend)
        return self.summary
