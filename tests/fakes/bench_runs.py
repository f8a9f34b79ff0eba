"""A stand-in for bench/learning_runs.run_one (any bench over seeds) that spawned workers can import: it trains
nothing, writes the run's result.json like the real one, and tells which process ran it and with which XLA_FLAGS."""

import os
from pathlib import Path

from dsrl_real.bench.learning_base import write_json
from dsrl_real.bench.learning_runs import RESULT_FILE, RunSpec, run_dir


def fake_run(spec: RunSpec) -> dict:
    result = {spec.bench.kind: spec.variant, "seed": spec.seed, "final_success_rate": spec.seed / 10, "final_ci95": [0.0, 1.0],
              "env_steps": 30, "wall_s": 1.0, "curve": [], "pid": os.getpid(), "xla_flags": os.environ.get("XLA_FLAGS")}
    write_json(run_dir(Path(spec.out), spec.variant, spec.seed) / RESULT_FILE, result)
    return result
