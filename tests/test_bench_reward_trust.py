"""`dsrl-real bench reward-trust` (bench/reward_trust*.py, analysis/stand_in_audit.py): the conditions' overrides,
each run trained on its condition and seed (a fake training in place of the trainer), a rerun skipping finished
runs, the report's numbers on fixed results, the human counts read from metrics.jsonl, refusals in one sentence,
and one tiny real run of the trainer behind the label tap. What it prints, never how fast."""

import dataclasses
import json
import pickle

import pytest
from conftest import FAST_TRAIN
from fakes import bench_runs
from fakes.bench_runs import fake_trust_train

from dsrl_real.bench import reward_trust
from dsrl_real.bench.learning_base import policy_file
from dsrl_real.bench.learning_runs import RunSpec
from dsrl_real.bench.reward_trust import CONDITIONS, REWARD_TRUST
from dsrl_real.bench.reward_trust_report import human_over_seeds
from dsrl_real.bench.reward_trust_runs import human_counts, measure
from dsrl_real.cli import main
from dsrl_real.rollout import rate

BASE = {"success_rate": 0.1, "ci95": [0.05, 0.2], "episodes": 50, "observations": "state", "policy": "p", "sha256": "abc",
        "wall_s": 1.0, "machine": {"cores": 2}}


def _json(path):
    return json.loads(path.read_text())


def _result(out, condition, seed):
    return _json(out / "runs" / condition / f"seed-{seed}" / "result.json")


def test_the_conditions_are_truth_the_stand_in_at_three_near_miss_rates_and_with_verify_all_ending_on_the_simulator():
    assert CONDITIONS == {
        "truth": ("reward.backend=sim_truth", "reward.end_on=env"),
        "stand_in_0": ("reward.backend=sim_reward_model", "reward.stand_in_near_miss_rate=0", "reward.end_on=env"),
        "stand_in_0.15": ("reward.backend=sim_reward_model", "reward.stand_in_near_miss_rate=0.15", "reward.end_on=env"),
        "stand_in_0.3": ("reward.backend=sim_reward_model", "reward.stand_in_near_miss_rate=0.3", "reward.end_on=env"),
        "stand_in_0.3_verify": ("reward.backend=sim_reward_model", "reward.stand_in_near_miss_rate=0.3", "reward.end_on=env",
                                "reward.verify=sim_human"),
        "stand_in_0.3_verify_sampled": ("reward.backend=sim_reward_model", "reward.stand_in_near_miss_rate=0.3",
                                        "reward.end_on=env", "reward.verify=sim_human", "reward.verify_clearance=10",
                                        "reward.verify_sample_fraction=0.25"),
    }
    assert (REWARD_TRUST.name, REWARD_TRUST.kind, REWARD_TRUST.variants) == ("reward-trust", "condition", CONDITIONS)
    spec = RunSpec("stand_in_0.3", 1, "out", ("a=1",), (), REWARD_TRUST)
    assert pickle.loads(pickle.dumps(spec)) == spec  # what a spawned worker gets (--jobs)


@pytest.fixture
def faked(tmp_path, monkeypatch):
    """The bench with fake_trust_train in place of the trainer, on a folder whose base policy is already there."""
    monkeypatch.setattr(reward_trust, "REWARD_TRUST", dataclasses.replace(REWARD_TRUST, train=fake_trust_train))
    monkeypatch.setattr(bench_runs, "TRAINED", [])
    out = tmp_path / "bench"
    out.mkdir()
    (out / "base.json").write_text(json.dumps(BASE))
    return out


def _bench(out, *args):
    return main(["bench", "reward-trust", "--obs", "state", "--seeds", "0,1", "--out", str(out), *args])


def test_each_run_trains_its_condition_on_its_seed_with_the_benchs_budgets_and_the_report_compares_it_with_truth(faked, capsys):
    assert _bench(faked) == 0
    report = json.loads(capsys.readouterr().out)
    seen = [(c.reward.backend, c.reward.stand_in_near_miss_rate, c.reward.verify, c.reward.verify_clearance, c.reward.end_on,
             c.run.seed, c.agent.seed) for c in bench_runs.TRAINED]
    assert seen == [(b, r, v, k, "env", s, s) for s in (0, 1) for b, r, v, k in (
        ("sim_truth", 0.3, "none", 0), ("sim_reward_model", 0.0, "none", 0), ("sim_reward_model", 0.15, "none", 0),
        ("sim_reward_model", 0.3, "none", 0), ("sim_reward_model", 0.3, "sim_human", 0), ("sim_reward_model", 0.3, "sim_human", 10))]
    for cfg in bench_runs.TRAINED:
        assert (cfg.agent.algorithm, cfg.task.name, cfg.env.object_state, cfg.train.record, cfg.policy.checkpoint) == (
            "dsrl_sac", "monkey", True, False, str(policy_file(faked)))
        assert (cfg.train.env_steps, cfg.train.eval_every_steps, cfg.train.eval_episodes, cfg.train.final_eval_episodes) == (6000, 1000, 20, 50)
    assert (report["bench"], report["conditions"], report["seeds"], report["skipped_finished_runs"]) == (
        "reward-trust", list(CONDITIONS), [0, 1], 0)
    assert report["condition_overrides"] == {c: list(o) for c, o in CONDITIONS.items()}
    assert (report["env_steps_budget"], report["eval_episodes"], report["curve_episodes"]) == (6000, 50, 20)
    truth, worst = report["truth"], report["stand_in_0.3"]
    assert (truth["per_seed"]["1"]["final_success_rate"], truth["mean"], truth["difference_to_truth"]) == (0.79, 0.795, None)
    assert worst["difference_to_truth"] == {"per_seed": {"0": -0.3, "1": -0.3}, "mean": -0.3, "ci95_over_seeds": [-0.3, -0.3], "n_seeds": 2}
    assert truth["human"] == {"labels": "every", "needed": 4, "training_episodes": 4, "share": 1.0,
                              "per_seed": {"0": {"needed": 2, "training_episodes": 2}, "1": {"needed": 2, "training_episodes": 2}}}
    assert (worst["human"]["needed"], worst["human"]["share"], worst["labelled_episodes"]) == (0, 0.0, 4)
    verified = report["stand_in_0.3_verify"]["human"]
    assert (verified["needed"], verified["share"], verified["false_positive_share"]) == (2, 0.5, rate(2, 2))
    assert (truth["stand_in_audit"], worst["stand_in_audit"]["false_positive_by_score"]["4"]) == (None, rate(2, 2))
    assert _result(faked, "stand_in_0", 1)["curve"] == [{"env_steps": 0, "success_rate": 0.1}, {"env_steps": 6000, "success_rate": 0.79}]
    assert (faked / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def test_a_rerun_trains_only_the_runs_without_a_result(faked, capsys):
    assert _bench(faked) == 0
    (faked / "runs" / "stand_in_0.15" / "seed-1" / "result.json").unlink()
    kept = {p: p.read_bytes() for p in faked.glob("runs/*/seed-*/result.json")}
    bench_runs.TRAINED.clear()
    capsys.readouterr()
    assert _bench(faked) == 0
    assert [(c.reward.stand_in_near_miss_rate, c.run.seed) for c in bench_runs.TRAINED] == [(0.15, 1)]
    assert {p: p.read_bytes() for p in kept} == kept
    report = json.loads(capsys.readouterr().out)
    assert (report["skipped_finished_runs"], report["stand_in_0.15"]["n_seeds"]) == (11, 2)


def test_a_folder_takes_a_condition_added_since_but_refuses_one_whose_overrides_changed(faked, capsys):
    assert _bench(faked, "--conditions", "truth") == 0
    held = _json(faked / "bench.json")
    del held["condition_overrides"]["stand_in_0.3_verify_sampled"]  # as a bench of before that condition wrote it
    (faked / "bench.json").write_text(json.dumps(held))
    assert _bench(faked, "--conditions", "stand_in_0.3_verify_sampled") == 0
    assert _json(faked / "bench.json")["condition_overrides"] == {c: list(o) for c, o in CONDITIONS.items()}
    assert [c.reward.verify_clearance for c in bench_runs.TRAINED] == [0, 0, 10, 10]
    held["condition_overrides"]["truth"] = ["reward.backend=sim_truth"]
    (faked / "bench.json").write_text(json.dumps(held))
    capsys.readouterr()
    assert _bench(faked, "--conditions", "truth") == 2
    assert capsys.readouterr().err.strip() == (
        f"dsrl-real: '{faked}' holds a bench reward-trust run with other settings (condition_overrides[truth] "
        "['reward.backend=sim_truth'], not ['reward.backend=sim_truth', 'reward.end_on=env']); choose another --out or "
        "remove that folder.")


def _write_results(out, condition, results):
    for seed, fields in results.items():
        path = out / "runs" / condition / f"seed-{seed}" / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"condition": condition, "seed": seed, "final_ci95": [0.0, 1.0], "env_steps": 6000, "wall_s": 10.0,
                                    "curve": [], "labelled_episodes": 30, "stand_in_labels": [], **fields}))


def _entry(truth_success, closeness, success, score):
    return {"truth_success": truth_success, "closeness_score": closeness, "success": success, "score": score}


def test_the_report_gives_the_difference_to_truth_paired_by_seed_the_human_counts_and_the_pooled_audit_exactly(tmp_path, capsys):
    out = tmp_path / "done"
    out.mkdir()
    (out / "bench.json").write_text(json.dumps({
        "task": "monkey", "obs": "pixels", "env_steps_budget": 6000, "eval_every_steps": 1000, "eval_episodes": 50,
        "curve_episodes": 20, "overrides": [], "bench": "reward-trust", "condition_overrides": {c: list(o) for c, o in CONDITIONS.items()}}))
    (out / "base.json").write_text(json.dumps(BASE))
    every = {"human_labels": "every", "training_episodes": 50, "needed_human": 50}
    _write_results(out, "truth", {s: {"final_success_rate": r, "human": every} for s, r in ((0, 0.8), (1, 0.7), (2, 0.9))})
    none = {"human_labels": "none", "training_episodes": 30, "needed_human": 0}
    labels = {0: [_entry(False, 4, True, 5), _entry(False, 4, False, 4), _entry(False, 1, False, 2), _entry(True, 4, True, 5)],
              1: [_entry(False, 3, True, 5), _entry(False, 2, False, 2), _entry(True, 3, False, 4)], 2: []}
    _write_results(out, "stand_in_0.3", {s: {"final_success_rate": r, "human": none, "stand_in_labels": labels[s]}
                                         for s, r in ((0, 0.6), (1, 0.4), (2, 0.7))})
    verify = [{"human_labels": "verify", "training_episodes": 40, "needed_human": n, "claims_answered": a, "claims_rejected": j}
              for n, a, j in ((10, 10, 3), (12, 12, 4), (14, 13, 5))]
    _write_results(out, "stand_in_0.3_verify", {s: {"final_success_rate": r, "human": verify[s]} for s, r in ((0, 0.8), (1, 0.6), (2, 0.8))})
    assert main(["bench", "reward-trust", "--merge", str(out), "--out", str(tmp_path / "merged")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["conditions"] == ["truth", "stand_in_0.3", "stand_in_0.3_verify"]
    truth, model, verified = report["truth"], report["stand_in_0.3"], report["stand_in_0.3_verify"]
    # 0.8, 0.7, 0.9: s.d. 0.1, t(0.975, 2) = 4.3027, 0.8 -+ 0.2484, clipped at 1
    assert (truth["mean"], truth["ci95_over_seeds"], truth["difference_to_truth"]) == (0.8, [0.552, 1.0], None)
    # -0.2, -0.3, -0.2: mean -0.2333, s.d. 0.0577, -+ 4.3027 x 0.0577 / sqrt(3) = 0.1434
    assert model["difference_to_truth"] == {"per_seed": {"0": -0.2, "1": -0.3, "2": -0.2}, "mean": -0.2333,
                                            "ci95_over_seeds": [-0.377, -0.09], "n_seeds": 3}
    # 0, -0.1, -0.1: mean -0.0667, s.d. 0.0577: -+ 0.1434
    assert verified["difference_to_truth"]["mean"] == -0.0667 and verified["difference_to_truth"]["ci95_over_seeds"] == [-0.21, 0.077]
    assert truth["human"]["needed"] == 150 and truth["human"]["share"] == 1.0
    assert model["human"]["needed"] == 0 and model["human"]["training_episodes"] == 90
    assert verified["human"] == {"labels": "verify", "needed": 36, "training_episodes": 120, "share": 0.3,
                                 "per_seed": {"0": {"needed": 10, "training_episodes": 40}, "1": {"needed": 12, "training_episodes": 40},
                                              "2": {"needed": 14, "training_episodes": 40}},
                                 "false_positive_share": rate(12, 35)}
    audit = model["stand_in_audit"]
    # failures by closeness: 4 twice (one called a success), 3 once (called a success), 2 and 1 once each (called failures)
    assert (audit["episodes"], audit["false_positive_rate"], audit["false_negative_rate"]) == (7, rate(2, 5), rate(1, 2))
    assert audit["false_positive_by_score"] == {"1": rate(0, 1), "2": rate(0, 1), "3": rate(1, 1), "4": rate(1, 2)}
    # |5-4| + 0 + |2-1| + 0 + |5-3| + 0 + |4-5| = 5 over 7 labels; of the 3 failures both call failures, 1 moved
    assert (audit["score_mae"]["value"], audit["score_mae"]["n"], audit["score_error_rate"]) == (5 / 7, 7, rate(1, 3))
    assert (truth["stand_in_audit"], verified["stand_in_audit"], model["labelled_episodes"]) == (None, None, 90)


def test_episodes_that_needed_a_human_are_read_from_the_verification_of_each_episode_record():
    episodes = [{"kind": "episode", "verification": v} for v in (
        {"verify": "claimed_success", "answer": "y"}, {"verify": "claimed_success", "answer": "n"},
        {"verify": "claimed_success", "answer": None}, {"verify": "failure_check", "answer": "f"}, {"verify": None, "answer": None})]
    records = [{"kind": "eval", "success_rate": 0.5}, *episodes]
    assert human_counts(records, "verify") == {"human_labels": "verify", "training_episodes": 5, "needed_human": 4,
                                               "claims_answered": 2, "claims_rejected": 1}
    assert human_counts(records, "every") == {"human_labels": "every", "training_episodes": 5, "needed_human": 5}
    assert human_counts(records, "none") == {"human_labels": "none", "training_episodes": 5, "needed_human": 0}
    unknown = human_counts([{"kind": "episode"}], "verify")
    assert unknown == {"human_labels": "verify", "training_episodes": 1, "needed_human": None,
                       "missing": "episode records without `verification` in metrics.jsonl"}
    summary = human_over_seeds({"0": {"human": unknown}, "1": {"human": human_counts(records, "verify")}})
    assert (summary["needed"], summary["share"], summary["missing"]) == (None, None, {"0": unknown["missing"]})


@pytest.mark.parametrize(("args", "sentence"), [
    (["--conditions", "truth,noisy"], "argument --conditions: 'noisy' is not one of truth, stand_in_0, stand_in_0.15, stand_in_0.3, "
                                      "stand_in_0.3_verify, stand_in_0.3_verify_sampled; give some of them separated by commas"),
    (["--obs", "depth"], "argument --obs: invalid choice: 'depth' (choose from 'pixels', 'state')"),
])
def test_bad_flags_are_refused_in_one_sentence(capsys, args, sentence):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "reward-trust", *args])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {sentence}")


def test_what_the_bench_cannot_use_is_refused_in_one_sentence(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    learning = tmp_path / "learning"
    learning.mkdir()
    (learning / "bench.json").write_text(json.dumps({"task": "monkey", "obs": "state"}))
    for args, sentence in [
        (["--task", "drawer"], "dsrl-real bench reward-trust takes no --task; run it without --task."),
        (["--algorithms", "dsrl_na"], "dsrl-real bench reward-trust takes no --algorithms; run it without --algorithms."),
        (["--merge", "a", "--conditions", "truth", "--jobs", "2"], "--merge reports on folders already run and takes no --jobs; "
                                                                   "run it without --jobs."),
        (["--merge", str(learning)], f"'{learning}' holds a bench learning run, not bench reward-trust; give the --out folder of a "
                                     "`dsrl-real bench reward-trust` run."),
        (["--out", str(learning), "--conditions", "truth"], f"'{learning}' holds a bench learning run; choose another --out or "
                                                            "remove that folder."),
    ]:
        assert main(["bench", "reward-trust", *args]) == 2
        assert capsys.readouterr().err == f"dsrl-real: {sentence}\n"


def test_a_tiny_real_run_keeps_the_stand_ins_labels_and_judges_evaluation_by_the_simulators_truth(tmp_path, capsys):
    """The trainer behind the label tap, for truth and a stand-in that calls every failure a success (a scaled-noise
    base policy in place of a pretrained one, which bench learning's tests pretrain). 12-step episodes cannot
    finish the task, so the truth is failure throughout: every label the stand-in gave is a false positive, and
    the final evaluation, by the simulator's truth, finds no success. In the verify
    condition the simulated human is asked about every claimed success and rejects them all."""
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "base.json").write_text(json.dumps(BASE))
    conditions = ["truth", "stand_in_0.3", "stand_in_0.3_verify"]
    tiny = [*FAST_TRAIN, "train.env_steps=30", "train.eval_every_steps=12", "train.eval_episodes=1", "train.final_eval_episodes=2",
            "train.warm_start_episodes=1", "reward.stand_in_false_positive_by_score=[1.0,1.0,1.0,1.0]"]
    assert main(["bench", "reward-trust", "--obs", "state", "--seeds", "0", "--conditions", ",".join(conditions),
                 "--out", str(out), *tiny]) == 0
    report = json.loads(capsys.readouterr().out)
    for condition in conditions:
        run = _result(out, condition, 0)
        episodes = run["human"]["training_episodes"]
        assert run["final_success_rate"] == 0.0 and run["labelled_episodes"] == episodes >= 3
        assert run["human"]["needed_human"] == {"truth": episodes, "stand_in_0.3": 0, "stand_in_0.3_verify": episodes}[condition]
        if condition == "truth":
            assert run["stand_in_labels"] == []  # simulator truth's labels carry no stand-in truth fields
        else:
            assert run["stand_in_labels"] == [{"truth_success": False, "closeness_score": e["closeness_score"], "success": True,
                                               "score": 5} for e in run["stand_in_labels"]] and len(run["stand_in_labels"]) == episodes
            assert report[condition]["stand_in_audit"]["false_positive_rate"] == rate(episodes, episodes)
    human = report["stand_in_0.3_verify"]["human"]
    assert human["false_positive_share"] == rate(human["needed"], human["needed"])


def test_measure_keeps_the_labels_and_reads_the_human_counts(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"kind": "episode"}) + "\n")
    run = {"labelled_episodes": 1, "stand_in_labels": [_entry(False, 2, False, 2)], "human_labels": "every"}
    assert measure(run, tmp_path) == {"labelled_episodes": 1, "stand_in_labels": [_entry(False, 2, False, 2)],
                                      "human": {"human_labels": "every", "training_episodes": 1, "needed_human": 1}}
