"""Stand-ins for the benches over seeds: `fake_run` for bench/learning_runs.run_one (any bench), which spawned
workers can import: it trains nothing, writes the run's result.json like the real one, and tells which process
ran it and with which XLA_FLAGS; `hanging_run`, one that never ends; `fake_trust_train` for bench reward-trust's training of one run."""

import json
import os
from pathlib import Path

from dsrl_real.bench.learning_base import write_json
from dsrl_real.bench.learning_runs import RESULT_FILE, RunSpec, run_dir


def fake_run(spec: RunSpec) -> dict:
    result = {spec.bench.kind: spec.variant, "seed": spec.seed, "final_success_rate": spec.seed / 10, "final_ci95": [0.0, 1.0],
              "env_steps": 30, "wall_s": 1.0, "curve": [], "pid": os.getpid(), "xla_flags": os.environ.get("XLA_FLAGS")}
    write_json(run_dir(Path(spec.out), spec.variant, spec.seed) / RESULT_FILE, result)
    return result


def hanging_run(spec: RunSpec) -> dict:
    """A run that never ends: it writes its pid to OUT/pid-SEED, then waits (at most 10 minutes)."""
    import time

    Path(spec.out, f"pid-{spec.seed}").write_text(str(os.getpid()))
    time.sleep(600)
    return {}


TRAINED: list = []  # the configs fake_trust_train was given, in order (runs in this process: --jobs 1)


def fake_trust_train(cfg) -> dict:
    """A stand-in for bench/reward_trust_runs.train_keeping_labels: trains nothing. Its final success says what it
    was given (0.8 with simulator truth, 0.8 - the near-miss rate with the stand-in, minus seed / 100), it writes an
    evaluation and two episode records into metrics.jsonl (with reward.verify: the first a claimed success the human
    rejected, the second one nobody asked about), and gives two stand-in labels: a near miss called a success and a
    success called a success."""
    from dsrl_real.bench.reward_trust_runs import human_labels

    TRAINED.append(cfg)
    r = cfg.reward
    rate = round((0.8 if r.backend == "sim_truth" else 0.8 - r.stand_in_near_miss_rate) - cfg.run.seed / 100, 4)
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    asked = [{"verify": "claimed_success", "answer": "n", "verified": True}, {"verify": None, "answer": None, "verified": None}]
    episodes = [{"kind": "episode", "env_steps": 10 * (i + 1), **({"verification": asked[i]} if r.verify != "none" else {})}
                for i in range(2)]
    records = [{"kind": "eval", "env_steps": 0, "success_rate": 0.1}, *episodes,
               {"kind": "final_eval", "env_steps": cfg.train.env_steps, "success_rate": rate}]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    labels = [] if r.backend == "sim_truth" else [
        {"truth_success": False, "closeness_score": 4, "success": True, "score": 5},
        {"truth_success": True, "closeness_score": 4, "success": True, "score": 5}]
    return {"final_success_rate": rate, "final_ci95": [0.0, 1.0], "env_steps": cfg.train.env_steps, "labelled_episodes": 2,
            "stand_in_labels": labels, "human_labels": human_labels(cfg)}
