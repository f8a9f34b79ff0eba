"""One run of `bench reward-trust`: the trainer with its reward backend behind a tap that keeps every
end-of-episode label the backend gives, and what the run's result adds to bench learning's: the labels
the stand-in audit needs (analysis/stand_in_audit.py) and the episodes that needed a human.

The tap, rather than the recording (bench runs set train.record=false) or new metrics fields: recording
would encode every episode's camera videos for a handful of numbers per episode, and the tap needs no
change to the trainer. It sees the backend's own labels, before a verifying human overrules any
(reward.verify), which are the ones the audit is about. The trainer scores training episodes only
(warm start included), never evaluation ones, so the labels are the training episodes'.

Episodes that needed a human, per run, from metrics.jsonl's episode records: with reward.verify, those whose
`verification` says the human was asked (`verify` set; its `answer` "n" to a "claimed_success" is a
rejection); with simulator truth (which stands for the human oracle) every episode; otherwise none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.metrics import read_records
from ..analysis.stand_in_audit import label_entry
from ..config import Config
from ..rewards.registry import build_reward_backend
from ..rewards.verify import CLAIMED_SUCCESS, REJECTED
from ..train.trainer import train_once

HUMAN_ORACLE = "sim_truth"  # the backend that stands for a human labelling every episode


class LabelTap:
    """`backend`, keeping each end-of-episode label it gives in `labels` (on the scoring worker, one episode at a
    time); everything else is the backend's own."""

    def __init__(self, backend: Any):
        self._backend = backend
        self.labels: list = []

    def score_episode(self, clip):
        score = self._backend.score_episode(clip)
        self.labels.append(score)
        return score

    def __getattr__(self, name: str):
        if name == "_backend":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._backend, name)


def train_keeping_labels(cfg: Config) -> dict:
    """train_once, with the labels the backend gave (label_entry's, where they carry the stand-in's truth) and how
    the condition's labels involve a human."""
    tap = LabelTap(build_reward_backend(cfg))
    run = train_once(cfg, reward_backend=tap)
    entries = [e for e in map(label_entry, tap.labels) if e is not None]
    return {**run, "labelled_episodes": len(tap.labels), "stand_in_labels": entries, "human_labels": human_labels(cfg)}


def human_labels(cfg: Config) -> str:
    """Which of a run's episodes a human would label: "every" (simulator truth, the human oracle's stand-in),
    "verify" (the claimed successes and checked failures of reward.verify) or "none"."""
    if cfg.reward.backend == HUMAN_ORACLE:
        return "every"
    return "none" if cfg.reward.verify == "none" else "verify"


def human_counts(records: list[dict], human: str) -> dict:
    """From a run's metrics records: its training episodes, those that needed a human (None when a verify run's
    records carry no `verification`), and with verify the claimed successes the human answered and rejected."""
    episodes = [r for r in records if r.get("kind") == "episode"]
    counts: dict[str, Any] = {"human_labels": human, "training_episodes": len(episodes)}
    if human != "verify":
        return {**counts, "needed_human": len(episodes) if human == "every" else 0}
    checks = [r.get("verification") for r in episodes]
    if any(not isinstance(c, dict) for c in checks):
        return {**counts, "needed_human": None, "missing": "episode records without `verification` in metrics.jsonl"}
    claims = [c for c in checks if c.get("verify") == CLAIMED_SUCCESS and c.get("answer") is not None]
    return {**counts, "needed_human": sum(bool(c.get("verify")) for c in checks), "claims_answered": len(claims),
            "claims_rejected": sum(c["answer"] == REJECTED for c in claims)}


def measure(run: dict, train_dir: Path) -> dict:
    """What a reward-trust run's result.json holds besides bench learning's fields."""
    return {"labelled_episodes": run["labelled_episodes"], "stand_in_labels": run["stand_in_labels"],
            "human": human_counts(read_records(train_dir / "metrics.jsonl"), run["human_labels"])}
