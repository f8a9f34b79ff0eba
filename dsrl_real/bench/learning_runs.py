"""The runs of the benches over seeds (`bench learning`, `bench reward-trust`): one variant (an algorithm,
a reward condition) on one seed each, from the folder's base policy, in this process or in
single-threaded worker processes. A run writes out/runs/VARIANT/seed-N/result.json the moment it ends,
so a bench cut short keeps its finished runs and a rerun skips them; a run cut short starts again from
scratch. `SeedBench` says what one bench compares and how its runs train."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..analysis.metrics import read_records
from ..config import Config, load_config
from ..machine import machine_info
from ..runlock import RunLock
from ..train.trainer import train_once
from .learning_base import demos_dir, read_json, write_json

# The action-space baseline reads what DSRL reads (the vectors and the base policy's frozen embedding), so the
# two differ in the space they act in only. With its own image encoder instead (the command line's
# train.action_space_features=observation) it updates that encoder every env step: 1.55 s per env step from
# pixels on one CPU core, 2.6 h per 6,000-step run.
ALGORITHMS: dict[str, list[str]] = {
    "dsrl_sac": ["agent.algorithm=dsrl_sac"],
    "dsrl_na": ["agent.preset=sim_cpu_na"],
    "sac_action_space": ["train.action_space_baseline=true", "train.action_space_features=policy_embedding"],
}
RESULT_FILE = "result.json"
BASE_DEMOS = "$base_demos"  # in a variant's overrides: the bench folder's demonstrations, which pretrained its base policy
# One thread per worker: XLA's CPU thread pools in N processes on few cores fight over them. XLA reads the
# flags when a process first computes, so they go into the environment the workers are spawned with.
SINGLE_THREADED_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@dataclass(frozen=True)
class SeedBench:
    """One bench over seeds. Spawned workers get it inside each RunSpec: its functions must be module-level."""

    name: str  # `dsrl-real bench NAME`
    kind: str  # what it compares ("algorithm"): the key naming a run's variant in its result, "<kind>s" in the report
    variants: Mapping[str, Sequence[str]]  # each variant's overrides, in the report's order
    train: Callable[[Config], dict] = train_once  # one run; its result (the trainer's) gives the final success
    # what else a run's result.json holds: measure(the train result, the run's train folder) -> fields
    measure: Callable[[dict, Path], dict] | None = None
    # extra report fields per variant: summarize({variant: {seed: result}}) -> {variant: fields}
    summarize: Callable[[dict[str, dict[str, dict]]], dict[str, dict]] | None = None

    def overrides(self, variant: str, out: Path) -> list[str]:
        """The variant's overrides for a bench folder: BASE_DEMOS names the folder's demonstrations."""
        return [o.replace(BASE_DEMOS, str(demos_dir(out))) for o in self.variants[variant]]


LEARNING = SeedBench("learning", "algorithm", ALGORITHMS)
# From state a gradient step is most of a run's cost and still cheap (no frames to embed), so DSRL-NA takes 20
# per chunk, as DSRL's released robomimic config does (cfg/robomimic/dsrl_can.yaml, utd: 20): over seeds 0-2 at
# 5,000 steps 86 / 94 / 86 % against 74 / 82 / 70 % with the preset's 10. DSRL-SAC did not gain from it; it is
# evaluated with its actor averaged over about the last 1,000 gradient steps (two episodes), since its live actor
# swings from update to update: on the same training runs (averaging changes no update) 8-11 points higher over
# four or five seeds (docs/experiments.md). Its buffer also starts with the 20 demonstrations that pretrained the
# base policy, their chunk steps given fitted noise (train.seed_noise): 85 % over seeds 0-5 against 76 % without
# (paired +9). From pixels the presets keep the three-seed bench inside 90 minutes.
ALGORITHMS_FROM_STATE = {**ALGORITHMS, "dsrl_sac": [*ALGORITHMS["dsrl_sac"], "agent.eval_average_tau=1e-3",
                                                     f"train.seed_runs=[{BASE_DEMOS}]"],
                         "dsrl_na": [*ALGORITHMS["dsrl_na"], "agent.utd=20"]}
LEARNING_BY_OBS: dict[str, SeedBench] = {"pixels": LEARNING, "state": SeedBench("learning", "algorithm", ALGORITHMS_FROM_STATE)}


@dataclass(frozen=True)
class RunSpec:
    variant: str
    seed: int
    out: str  # the bench's folder
    overrides: tuple[str, ...]  # the bench's, the base policy's checkpoint among them
    user_overrides: tuple[str, ...] = ()  # the command line's, applied last
    bench: SeedBench = LEARNING

    @property
    def algorithm(self) -> str:
        """bench learning's name for the variant."""
        return self.variant


def run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / variant / f"seed-{seed}"


def finished(out: Path, variant: str, seed: int) -> dict | None:
    return read_json(run_dir(out, variant, seed) / RESULT_FILE)


def finished_runs(out: Path) -> list[dict]:
    """Every result.json under out/runs, in (variant, seed) order."""
    return [read_json(p) for p in sorted((out / "runs").glob(f"*/seed-*/{RESULT_FILE}"))]


def run_one(spec: RunSpec) -> dict:
    """Train spec.variant with run.seed = agent.seed = spec.seed into its run folder; write and return its result."""
    bench = spec.bench
    folder = run_dir(Path(spec.out), spec.variant, spec.seed)
    with RunLock.acquire(folder, f"bench {bench.name} ({spec.variant}, seed {spec.seed})",
                         f"give each invocation on the same --out other seeds or {bench.kind}s"):
        train_dir = folder / "train"
        shutil.rmtree(train_dir, ignore_errors=True)  # a run cut short: it starts again
        cfg = load_config(overrides=[*spec.overrides, *bench.overrides(spec.variant, Path(spec.out)), f"run.seed={spec.seed}",
                                     f"agent.seed={spec.seed}", f"train.out_dir={train_dir}", *spec.user_overrides])
        start = time.perf_counter()
        run = bench.train(cfg)
        wall_s = round(time.perf_counter() - start, 1)
        curve = [{"env_steps": r["env_steps"], "success_rate": r["success_rate"]}
                 for r in read_records(train_dir / "metrics.jsonl") if r["kind"] in ("eval", "final_eval")]
        result = {bench.kind: spec.variant, "seed": spec.seed, "final_success_rate": run["final_success_rate"],
                  "final_ci95": run["final_ci95"], "env_steps": run["env_steps"], "wall_s": wall_s,
                  "curve": curve, **(bench.measure(run, train_dir) if bench.measure else {}), "machine": machine_info()}
        write_json(folder / RESULT_FILE, result)
    return result


def _said(spec: RunSpec, result: dict) -> dict:
    lo, hi = result["final_ci95"]
    print(f"bench {spec.bench.name}: {spec.variant} seed {result['seed']}: {result['final_success_rate']:.0%} success "
          f"(95 % CI {lo:.0%}-{hi:.0%}) after {result['env_steps']} env steps, {result['wall_s']:.0f} s", file=sys.stderr)
    return result


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """XLA_FLAGS for the processes spawned inside, with the single-threaded flags added."""
    old = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{old} {SINGLE_THREADED_XLA}" if old else SINGLE_THREADED_XLA
    try:
        yield
    finally:
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old


def die_with_parent(parent: int) -> None:
    """A worker's initializer: on Linux the kernel sends it SIGTERM when the process that spawned it dies
    (prctl PR_SET_PDEATHSIG), so a bench killed with `kill PID` leaves no worker training on; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent was already gone before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def run_all(specs: Sequence[RunSpec], jobs: int, run: Callable[[RunSpec], dict] = run_one) -> list[dict]:
    """`run` each of `specs` one after another here (jobs 1) or in `jobs` spawned single-threaded worker
    processes (`run` a module-level function they can import). The first failure stops the runs not yet
    started; finished ones have written their results."""
    if jobs <= 1 or len(specs) <= 1:
        return [_said(spec, run(spec)) for spec in specs]
    results = []
    with single_threaded_children(), ProcessPoolExecutor(max_workers=min(jobs, len(specs)), initializer=die_with_parent,
                                                         initargs=(os.getpid(),),
                                                         mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run, spec): spec for spec in specs}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results.append(_said(futures[future], future.result()))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results
