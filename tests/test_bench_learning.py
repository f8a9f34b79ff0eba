"""`dsrl-real bench learning` over seeds (bench/learning*.py) on a tiny base policy and budget: what it
reports, that a rerun skips finished runs, that merged partial folders report what one folder does, the
worker processes and the command line's refusals. What it prints, never how fast."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakes.bench_runs import fake_run

from dsrl_real.analysis.seeds import t_interval
from dsrl_real.bench import learning, learning_base
from dsrl_real.bench.learning_runs import SINGLE_THREADED_XLA, RunSpec, run_all
from dsrl_real.cli import main
from dsrl_real.config import load_config
from dsrl_real.rollout import success_summary

TINY = ["demos.episodes=2", "pretrain.steps=10", "pretrain.eval_every=10", "pretrain.checkpoint_every=10", "pretrain.batch_size=16",
        "policy.hidden_dim=16", "policy.embed_dim=8", "policy.inference_steps=2", "task.max_steps=12", "agent.hidden_dim=16",
        "agent.batch_size=8", "agent.utd=1", "train.warm_start_episodes=1", "train.env_steps=30", "train.eval_every_steps=12",
        "train.eval_episodes=1", "train.final_eval_episodes=2"]
BENCH = ["bench", "learning", "--obs", "state", "--algorithms", "dsrl_sac"]
# what differs between reports of the same runs: when and where they were made
WHERE = ("wall_s", "out_dir", "learning_curve", "skipped_finished_runs", "merged_from")


def _json(path):
    return json.loads(path.read_text())


def _result(out, seed, algorithm="dsrl_sac"):
    return _json(out / "runs" / algorithm / f"seed-{seed}" / "result.json")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Seeds 0 and 1 of DSRL-SAC in one folder."""
    out = tmp_path_factory.mktemp("bench") / "full"
    assert main([*BENCH, "--seeds", "0,1", "--out", str(out), *TINY]) == 0
    return out


def test_the_report_gives_each_seeds_final_success_their_mean_and_t_interval_the_base_rate_and_the_label(full):
    report = _json(full / "report.json")
    base = _json(full / "base.json")
    assert (report["task"], report["obs"], report["observations"]) == ("monkey", "state",
                                                                        "state: proprio + object_state (privileged, simulation only)")
    assert (report["env_steps_budget"], report["eval_every_steps"], report["eval_episodes"], report["curve_episodes"]) == (30, 12, 2, 1)
    assert (report["seeds"], report["algorithms"], report["skipped_finished_runs"]) == ([0, 1], ["dsrl_sac"], 0)
    assert (report["base_success_rate"], report["base_ci95"], report["base_policies"]) == (base["success_rate"], base["ci95"], 1)
    sac, rates = report["dsrl_sac"], []
    for seed in (0, 1):
        run = _result(full, seed)
        rates.append(run["final_success_rate"])
        assert sac["per_seed"][str(seed)] == {k: run[k] for k in ("final_success_rate", "final_ci95", "env_steps", "wall_s")}
        assert run["final_ci95"] == success_summary(round(run["final_success_rate"] * 2), 2)["ci95"]  # its own Wilson interval
        assert run["env_steps"] >= 30 and run["curve"][0]["env_steps"] == 0
    assert (sac["mean"], sac["ci95_over_seeds"], sac["n_seeds"]) == (round(sum(rates) / 2, 4), t_interval(rates), 2)
    assert sac["curve"]["env_steps"] == [0, 12, 24, 30] and sac["curve"]["n_seeds"] == [2, 2, 2, 2]
    assert report["machine"]["cores"] >= 1 and report["wall_s"] >= report["runs_wall_s"] > 0
    assert (full / "learning_curve.png").read_bytes().startswith(b"\x89PNG")
    assert report["learning_curve"] == str(full / "learning_curve.png") and "sac_action_space" not in report
    # each run's buffer started with the base policy's two demonstrations, their chunk steps given fitted noise
    for seed in (0, 1):
        (seeded,) = [r for r in map(json.loads, (full / "runs" / "dsrl_sac" / f"seed-{seed}" / "train" / "metrics.jsonl").open())
                     if r["kind"] == "seed"]
        assert seeded["runs"] == [str(full / "base" / "demos")] and seeded["episodes"] == 2
        assert seeded["noise_fitted"] + seeded["noise_unfitted"] == seeded["transitions"] > 0


def test_a_rerun_skips_finished_runs_and_the_base_policy_and_restarts_a_run_cut_short(full, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    shutil.copytree(full, out)
    (out / "runs" / "dsrl_sac" / "seed-2" / "train").mkdir(parents=True)
    (out / "runs" / "dsrl_sac" / "seed-2" / "train" / "metrics.jsonl").write_text('{"kind": "eval"')  # a run cut short
    finished = {s: (out / "runs" / "dsrl_sac" / f"seed-{s}" / "result.json").read_bytes() for s in (0, 1)}
    pending = []
    real_run_all = learning.run_all
    monkeypatch.setattr(learning, "run_all", lambda specs, jobs: real_run_all(pending.extend(specs) or specs, jobs))
    monkeypatch.setattr(learning_base, "pretrain_from_demos", lambda *a: pytest.fail("pretrained again"))
    assert main([*BENCH, "--seeds", "0,1,2", "--out", str(out), *TINY]) == 0
    assert [(s.algorithm, s.seed) for s in pending] == [("dsrl_sac", 2)]
    assert {s: (out / "runs" / "dsrl_sac" / f"seed-{s}" / "result.json").read_bytes() for s in (0, 1)} == finished
    report = _json(out / "report.json")
    assert (report["seeds"], report["dsrl_sac"]["n_seeds"], report["skipped_finished_runs"]) == ([0, 1, 2], 3, 2)
    assert _result(out, 2)["curve"][0]["env_steps"] == 0  # the run started over


def test_two_partial_folders_merged_report_what_the_full_folder_does(full, tmp_path, capsys):
    parts = []
    for seed in (0, 1):
        part = tmp_path / f"seed{seed}"
        for name in ("bench.json", "base.json", "report.json"):
            (part / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(full / name, part / name)
        shutil.copytree(full / "runs" / "dsrl_sac" / f"seed-{seed}", part / "runs" / "dsrl_sac" / f"seed-{seed}")
        parts.append(part)
    merged_dir = tmp_path / "merged"
    assert main(["bench", "learning", "--merge", *map(str, parts), "--out", str(merged_dir)]) == 0
    merged, whole = json.loads(capsys.readouterr().out), _json(full / "report.json")
    assert {k: v for k, v in merged.items() if k not in WHERE} == {k: v for k, v in whole.items() if k not in WHERE}
    assert merged["merged_from"] == [str(p) for p in parts] and merged["wall_s"] == whole["wall_s"]
    assert _json(merged_dir / "report.json") == merged and (merged_dir / "learning_curve.png").is_file()

    assert main(["bench", "learning", "--merge", str(full), str(parts[1])]) == 2  # seed 1 twice
    assert capsys.readouterr().err.endswith(f"dsrl-real: Seed 1 of dsrl_sac is in both '{full}' and '{parts[1]}'; "
                                            "merge folders that hold different seeds.\n")
    settings = _json(parts[1] / "bench.json")
    (parts[1] / "bench.json").write_text(json.dumps({**settings, "env_steps_budget": 48}))
    assert main(["bench", "learning", "--merge", *map(str, parts)]) == 2
    assert capsys.readouterr().err.endswith(
        f"dsrl-real: '{parts[0]}' and '{parts[1]}' hold benches with other settings (env_steps_budget 30 against 48); "
        "merge only folders run with the same --task, --obs, budgets and overrides.\n")


def test_a_folder_run_with_other_settings_is_refused_before_anything_runs(full, capsys):
    before = sorted(p.relative_to(full) for p in full.rglob("*"))
    assert main([*BENCH, "--seeds", "0", "--out", str(full), *TINY, "train.env_steps=48"]) == 2
    assert capsys.readouterr().err.endswith(
        f"dsrl-real: '{full}' holds a bench learning run with other settings (env_steps_budget 30, not 48; overrides "
        f"{TINY!r}, not {[*TINY, 'train.env_steps=48']!r}); choose another --out or remove that folder.\n")
    assert sorted(p.relative_to(full) for p in full.rglob("*")) == before


def test_parallel_runs_go_to_spawned_single_threaded_workers_each_writing_its_result(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nowhere")
    specs = [RunSpec("dsrl_na", seed, str(tmp_path), ()) for seed in (3, 4)]
    results = run_all(specs, jobs=2, run=fake_run)
    assert sorted(r["seed"] for r in results) == [3, 4]
    for r in results:
        assert r["pid"] != os.getpid() and r["xla_flags"] == f"--xla_dump_to=/nowhere {SINGLE_THREADED_XLA}"
        assert _result(tmp_path, r["seed"], "dsrl_na") == r
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/nowhere"  # this process's own, as it was


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_bench_killed_by_sigterm_takes_its_workers_with_it(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from fakes.bench_runs import hanging_run
        from dsrl_real.bench.learning_runs import RunSpec, run_all
        run_all([RunSpec("dsrl_sac", s, {str(tmp_path)!r}, ()) for s in (0, 1)], jobs=2, run=hanging_run)
        """)], cwd=Path(__file__).parent, env={**os.environ, "PYTHONPATH": f"{Path(__file__).parent}:{Path(__file__).parent.parent}"})
    try:
        pid_files = [tmp_path / "pid-0", tmp_path / "pid-1"]
        deadline = time.monotonic() + 120
        while not all(p.exists() and p.read_text() for p in pid_files):
            assert parent.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in pid_files]
        assert all(_alive(pid) for pid in workers)
        parent.terminate()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        for p in tmp_path.glob("pid-*"):
            if p.read_text() and _alive(int(p.read_text())):
                os.kill(int(p.read_text()), signal.SIGKILL)


@pytest.mark.parametrize(("args", "sentence"), [
    (["--seeds", "a,b"], "argument --seeds: 'a,b' is not a list of seeds; give integers from 0 to 1000000000 separated by commas, "
                         "e.g. 0,1,2"),
    (["--seeds", "0,1,0"], "argument --seeds: '0,1,0' names seed 0 twice; give each seed once"),
    (["--algorithms", "dsrl_sac,ppo"], "argument --algorithms: 'ppo' is not one of dsrl_sac, dsrl_na, sac_action_space; "
                                       "give some of them separated by commas"),
    (["--jobs", "0"], "argument --jobs: '0' is not a number of worker processes; give an integer from 1 to 256"),
    (["--obs", "depth"], "argument --obs: invalid choice: 'depth' (choose from 'pixels', 'state')"),
])
def test_bad_bench_flags_are_refused_in_one_sentence(capsys, args, sentence):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "learning", *args])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {sentence}")


@pytest.mark.parametrize(("args", "sentence"), [
    (["bench", "sim", "--seeds", "0"], "dsrl-real bench sim takes no --seeds; run it without --seeds."),
    (["bench", "learning", "--merge", "a", "--jobs", "2"], "--merge reports on folders already run and takes no --jobs; "
                                                           "run it without --jobs."),
    (["bench", "learning", "--merge", "nowhere"], "'nowhere' holds no bench learning results (bench.json is missing); "
                                                  "give the --out folder of a `dsrl-real bench learning` run."),
])
def test_flags_a_bench_cannot_use_are_refused_in_one_sentence(capsys, tmp_path, monkeypatch, args, sentence):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert capsys.readouterr().err == f"dsrl-real: {sentence}\n"


@pytest.mark.parametrize(("obs", "budget"), [("pixels", 6000), ("state", 5000)])
def test_the_default_budget_is_the_papers_6000_steps_from_pixels_and_5000_from_state(monkeypatch, tmp_path, obs, budget):
    given = {}
    monkeypatch.setattr(learning, "run_seed_bench", lambda bench, out, head, common, *rest: given.setdefault("common", common))
    learning.bench_learning(obs=obs, out=str(tmp_path))
    assert [o for o in given["common"] if o.startswith("train.env_steps=")] == [f"train.env_steps={budget}"]


@pytest.mark.parametrize(("obs", "na_utd", "sac_average"), [("pixels", 10, 0.0), ("state", 20, 1e-3)])
def test_from_state_dsrl_sac_is_evaluated_with_its_averaged_actor_and_dsrl_na_takes_20_gradient_steps_per_chunk(
        monkeypatch, tmp_path, obs, na_utd, sac_average):
    given = {}
    monkeypatch.setattr(learning, "run_seed_bench",
                        lambda bench, out, settings, common, *rest: given.update(bench=bench, settings=settings, common=common))
    learning.bench_learning(obs=obs, out=str(tmp_path))
    variants = given["bench"].variants
    agents = {name: load_config(overrides=[*given["common"], *variants[name]]).agent for name in variants}
    assert {name: a.utd for name, a in agents.items()} == {"dsrl_sac": 10, "dsrl_na": na_utd, "sac_action_space": 10}
    assert {name: a.init_temperature for name, a in agents.items()} == {"dsrl_sac": 0.02, "dsrl_na": 0.02,
                                                                       "sac_action_space": 0.02}
    assert {name: a.eval_average_tau for name, a in agents.items()} == {"dsrl_sac": sac_average, "dsrl_na": 0.0,
                                                                       "sac_action_space": 0.0}
    assert given["settings"]["algorithm_overrides"] == {name: list(o) for name, o in variants.items()}
    # from state DSRL-SAC's buffer starts with the demonstrations that pretrained the folder's base policy
    seeded = {name: load_config(overrides=[*given["common"], *given["bench"].overrides(name, tmp_path)]).train.seed_runs
              for name in variants}
    assert seeded == {"dsrl_sac": [str(tmp_path / "base" / "demos")] if obs == "state" else [], "dsrl_na": [], "sac_action_space": []}


def test_a_folder_whose_runs_had_other_algorithm_settings_is_refused(full, capsys):
    settings = _json(full / "bench.json")
    ours = ["agent.algorithm=dsrl_sac", "agent.eval_average_tau=1e-3", "train.seed_runs=[$base_demos]"]
    assert settings["algorithm_overrides"]["dsrl_sac"] == ours
    (full / "bench.json").write_text(json.dumps({**settings, "algorithm_overrides": {"dsrl_sac": [*ours, "agent.utd=20"]}}))
    try:
        assert main([*BENCH, "--seeds", "0", "--out", str(full), *TINY]) == 2
    finally:
        (full / "bench.json").write_text(json.dumps(settings))
    assert f"algorithm_overrides[dsrl_sac] {[*ours, 'agent.utd=20']}, not {ours}" in capsys.readouterr().err
