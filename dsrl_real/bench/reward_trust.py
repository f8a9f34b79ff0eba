"""`dsrl-real bench reward-trust`: DSRL-SAC on the simulated monkey task trained on rewards of varying trust,
over several seeds from one base policy: simulator truth (standing for a human labelling every episode),
the stand-in for a flawed reward model (rewards/stand_in.py) at near-miss false-positive rates 0, 0.15
and 0.3, and the stand-in at 0.3 with a (simulated) human confirming its claimed successes (reward.verify):
every one, or by a sampling plan that spot-checks them once they hold.

Every condition ends episodes the same way, reward.end_on=env: the simulator ends an episode on its true
success (or the time limit), and the condition's backend only labels it afterwards; so the conditions
differ in their labels, not in when episodes end. Evaluation success is always the simulator's truth.
The runs, resume, --jobs and --merge are bench learning's (learning*.py); what a run and the report add
is in reward_trust_runs.py and reward_trust_report.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config.observations import OBSERVATIONS, observation_overrides
from .learning import DEFAULT_SEEDS, budget_overrides, check_choices, merge_seed_bench, run_seed_bench
from .learning_runs import SeedBench
from .reward_trust_report import TRUTH, summarize
from .reward_trust_runs import measure, train_keeping_labels

DEFAULT_OUT = "runs/bench-reward-trust"
TASK = "monkey"
END_ON = "reward.end_on=env"  # the same episode ending for every condition


def _stand_in(near_miss_rate: float) -> tuple[str, ...]:
    return ("reward.backend=sim_reward_model", f"reward.stand_in_near_miss_rate={near_miss_rate}", END_ON)


CONDITIONS: dict[str, tuple[str, ...]] = {
    TRUTH: ("reward.backend=sim_truth", END_ON),
    "stand_in_0": _stand_in(0),
    "stand_in_0.15": _stand_in(0.15),
    "stand_in_0.3": _stand_in(0.3),
    "stand_in_0.3_verify": (*_stand_in(0.3), "reward.verify=sim_human"),
    # verify positives by the continuous sampling plan CSP-1 (rewards/verify.py): every claim until 10 in a row are
    # confirmed, then a random quarter, until one is rejected
    "stand_in_0.3_verify_sampled": (*_stand_in(0.3), "reward.verify=sim_human", "reward.verify_clearance=10",
                                    "reward.verify_sample_fraction=0.25"),
}
REWARD_TRUST = SeedBench("reward-trust", "condition", CONDITIONS, train=train_keeping_labels, measure=measure,
                         summarize=summarize)


def bench_reward_trust(obs: str = "pixels", seeds: Sequence[int] | None = None, conditions: Sequence[str] | None = None,
                       jobs: int = 1, out: str | None = None, merge: Sequence[str] = (), env_steps: int = 6000,
                       eval_every_steps: int = 1000, eval_episodes: int = 50, curve_episodes: int = 20,
                       overrides: Sequence[str] = ()) -> dict:
    """DSRL-SAC (sim_cpu preset) on the monkey task with `obs` observations under each of `conditions` (default all
    of CONDITIONS), on every seed in `seeds` (default 0, 1, 2), from one base policy pretrained into `out`, on
    `env_steps` (the papers' WidowX budget, 6,000). Final success over `eval_episodes` trials, the curve's
    points over `curve_episodes`; `jobs`, resume and `merge` as in bench learning. `overrides` come after the
    bench's own."""
    if merge:
        return merge_seed_bench(REWARD_TRUST, merge, out, DEFAULT_OUT, seeds, conditions)
    seeds, conditions = list(DEFAULT_SEEDS if seeds is None else seeds), list(CONDITIONS if conditions is None else conditions)
    check_choices(("condition", next((c for c in conditions if c not in CONDITIONS), None), CONDITIONS),
                  ("observation mode", None if obs in OBSERVATIONS else obs, OBSERVATIONS))
    common = [*observation_overrides(obs), "agent.preset=sim_cpu", "agent.algorithm=dsrl_sac", f"task.name={TASK}",
              *budget_overrides(env_steps, eval_every_steps, eval_episodes, curve_episodes)]
    settings = {"task": TASK, "obs": obs, "bench": REWARD_TRUST.name,
                "condition_overrides": {name: list(o) for name, o in CONDITIONS.items()}}
    return run_seed_bench(REWARD_TRUST, Path(out or f"{DEFAULT_OUT}/{TASK}-{obs}"), settings, common, overrides, seeds,
                          conditions, jobs)
