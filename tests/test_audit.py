"""Auditing reward backends against human labels: hand-computed metrics, and a simulated
human-oracle run whose injected label noise the audit must recover."""

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from dsrl_real.analysis.audit import AuditError, audit_pairs, audit_run, kendall_tau, pairwise_accuracy
from dsrl_real.cli import main
from dsrl_real.envs.make import make_sim_env
from dsrl_real.recording import RunRecorder
from dsrl_real.rewards.base import EpisodeClip, EpisodeScore, SimTruthBackend
from dsrl_real.rewards.noisy import NoisyBackend
from dsrl_real.rollout import random_policy, scripted_expert, wilson_interval
from dsrl_real.rollout.record import record_episode

HUMAN = [1, 2, 3, 4, 5, 5]
BACKEND = [2, 2, 4, 4, 5, 3]
BACKEND_SUCCESS = [False, True, False, True, True, False]


def labels(scores, successes):
    return [{"score": s, "success": ok, "reward": (s - 1) / 4} for s, ok in zip(scores, successes)]


def test_metrics_on_a_constructed_label_set_match_hand_computed_values():
    pairs = list(zip(labels(HUMAN, [s == 5 for s in HUMAN]), labels(BACKEND, BACKEND_SUCCESS)))
    m = audit_pairs(pairs, resamples=200)
    assert m["mae"]["value"] == pytest.approx((1 + 0 + 1 + 0 + 0 + 2) / 6) and m["mae"]["n"] == 6
    # human failures: episodes 0-3; the backend calls 1 and 3 successes. Human successes: 4, 5; it misses 5.
    assert m["false_positive_rate"] == {"value": 0.5, "count": 2, "n": 4, "ci95": list(wilson_interval(2, 4))}
    assert m["false_negative_rate"] == {"value": 0.5, "count": 1, "n": 2, "ci95": list(wilson_interval(1, 2))}
    # Returns (s - 1) / 4 order like the scores: 10 concordant, 2 discordant pairs; ties: 1 human, 2 backend.
    assert m["kendall_tau"]["value"] == pytest.approx(8 / np.sqrt((15 - 1) * (15 - 2)))
    assert m["kendall_tau"]["value"] == pytest.approx(kendalltau(HUMAN, BACKEND).statistic)
    # 14 pairs the human tells apart: 10 ordered alike, 2 tied by the backend (1/2 each), 2 reversed.
    assert m["pairwise_accuracy"]["credit"] == 11 and m["pairwise_accuracy"]["pairs"] == 14
    assert m["pairwise_accuracy"]["value"] == pytest.approx(11 / 14)
    expected = np.zeros((5, 5), int)
    for h, b in zip(HUMAN, BACKEND):
        expected[h - 1, b - 1] += 1
    assert m["confusion"]["counts"] == expected.tolist() and m["confusion"]["rows"] == [1, 2, 3, 4, 5]
    lo, hi = m["mae"]["ci95"]
    assert lo <= m["mae"]["value"] <= hi


def test_tau_and_pairwise_accuracy_handle_ties_like_scipy_and_half_credit():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 3, 25), rng.integers(0, 4, 25)
        assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert pairwise_accuracy([0, 1, 1], [0.5, 0.5, 0.9]) == (1.5, 2)  # (0,1) tied: 1/2, (0,2) right: 1, (1,2) not a pair


def test_false_positives_by_the_humans_score_of_the_failure():
    # Human failures at 1, 1, 2, 4, 4, 4 (3: none) and one success; the backend says success on one 1, no 2 and two 4s.
    human = labels([1, 1, 2, 4, 4, 4, 5], [False] * 6 + [True])
    backend = [{"score": 5, "success": True}, {"score": 2, "success": False}, {"score": 3, "success": False},
               {"score": 5, "success": True}, {"score": None, "success": None, "valid": False}, {"score": 5, "success": True},
               {"score": 4, "success": False}]
    by_score = audit_pairs(list(zip(human, backend)), resamples=10)["false_positive_by_reference_score"]
    assert by_score == {"1": {"value": 0.5, "ci95": list(wilson_interval(1, 2)), "count": 1, "n": 2},
                        "2": {"value": 0.0, "ci95": list(wilson_interval(0, 1)), "count": 0, "n": 1},
                        "3": {"value": None, "ci95": None, "count": 0, "n": 0},
                        "4": {"value": 2 / 3, "ci95": list(wilson_interval(2, 3)), "count": 2, "n": 3}}
    binary = [{"success": h["success"], "reward": float(h["success"])} for h in human]  # no 1-5 scale: no figure
    assert audit_pairs(list(zip(binary, backend)), resamples=10)["false_positive_by_reference_score"] is None


def test_binary_human_labels_and_invalid_backend_answers():
    human = [{"success": s, "reward": float(s)} for s in (True, False, False, True)]
    backend = [{"score": 5, "success": True, "reward": 1.0}, {"score": None, "success": False, "reward": 0.0, "valid": False},
               {"score": 4, "success": True, "reward": 0.75}, {"score": 2, "success": False, "reward": 0.25}]
    m = audit_pairs(list(zip(human, backend)), resamples=100)
    assert m["invalid"] == 1 and m["mae"]["value"] is None and m["mae"]["n"] == 0  # no human 1-5 scores
    assert (m["false_positive_rate"]["count"], m["false_positive_rate"]["n"]) == (1, 2)
    assert (m["false_negative_rate"]["count"], m["false_negative_rate"]["n"]) == (1, 2)
    assert m["confusion"]["rows"] == ["failure", "success"] and m["confusion"]["columns"] == ["failure", "success"]
    assert m["confusion"]["counts"] == [[1, 1], [1, 1]]
    # Orders: human success > failure on 4 pairs; backend returns 1.0, 0.0, 0.75, 0.25 get (0,1), (0,2) right, (3,1) right, (3,2) wrong.
    assert m["pairwise_accuracy"]["compares"] == {"reference": "return", "backend": "return"}
    assert (m["pairwise_accuracy"]["credit"], m["pairwise_accuracy"]["pairs"]) == (3, 4)


def record_labelled(run_dir, label_sets: list[dict]):
    with RunRecorder(run_dir, [], 5.0) as rec:
        for i, lab in enumerate(label_sets):
            ep = rec.begin_episode("baseline", i, "pull the drawer out")
            ep.add_step(action=np.zeros(7, np.float32))
            ep.finish(success=bool(lab.get("human", {}).get("success")), terminated=False, truncated=True, labels=lab)


def test_a_run_without_human_labels_or_without_other_backends_is_one_sentence(tmp_path, capsys):
    record_labelled(tmp_path / "a", [{"roboreward": {"score": 3, "success": False, "reward": 0.5}}])
    with pytest.raises(AuditError, match="has no human labels in its 1 complete episodes"):
        audit_run(tmp_path / "a")
    assert main(["audit", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dsrl-real: The run") and "no human labels" in err and "\n" not in err
    record_labelled(tmp_path / "b", [{"human": {"success": True}}])
    with pytest.raises(AuditError, match="has human labels but no other backend's labels; run the learned backends in shadow mode"):
        audit_run(tmp_path / "b")
    assert main(["audit", str(tmp_path / "nothing")]) == 2
    assert "holds no recorded episodes" in capsys.readouterr().err


def human_oracle(clip: EpisodeClip) -> dict:
    """The simulated human: the true outcome, and a 1-5 score rounded from the true progress."""
    final = clip.truth[-1]
    return {"score": int(np.rint(1 + 4 * final.progress)), "success": bool(final.success), "reward": float(final.success)}


FALSE_POSITIVE_RATE, SCORE_ERROR_RATE = 0.3, 0.25


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    """64 episodes (half scripted expert, half random actions) on the simulated drawer task, each labelled by the simulated human and, in shadow mode, by the simulator's truth and a
    noisy variant of it."""
    run_dir = tmp_path_factory.mktemp("oracle")
    env = make_sim_env(task="drawer", cameras=(), seed=0, max_steps=25)
    noisy = NoisyBackend(SimTruthBackend(), false_positive_rate=FALSE_POSITIVE_RATE, score_error_rate=SCORE_ERROR_RATE, seed=1)
    expert, rand = scripted_expert(env, 0.3, seed=0), random_policy(env, seed=0)
    with RunRecorder(run_dir, [], env.control_hz, {"robot_type": "wx250s"}) as rec:
        for seed in range(64):
            record_episode(env, expert if seed % 2 == 0 else rand, rec, kind="baseline", seed=seed,
                           backends=[SimTruthBackend(), noisy], human=human_oracle)
    return run_dir


def test_a_human_oracle_run_recovers_the_injected_label_noise(oracle_run):
    result = audit_run(oracle_run, resamples=500)
    assert result["labelled_episodes"] == 64 and set(result["backends"]) == {"sim_truth", "sim_truth_noisy"}
    truth, noisy = result["backends"]["sim_truth"], result["backends"]["sim_truth_noisy"]
    negatives, positives = truth["false_positive_rate"]["n"], truth["false_negative_rate"]["n"]
    assert negatives >= 25 and positives >= 12  # enough failures and successes to measure both rates
    # The simulator's truth agrees with the simulated human up to the human's rounding to whole scores.
    assert truth["false_positive_rate"]["count"] == 0 and truth["false_negative_rate"]["count"] == 0
    assert 0 < truth["mae"]["value"] <= 0.5
    # The noisy backend: what was injected, within the audit's 95% intervals ...
    lo, hi = noisy["false_positive_rate"]["ci95"]
    assert lo <= FALSE_POSITIVE_RATE <= hi
    lo, hi = noisy["mae"]["ci95"]
    assert lo <= 2 * SCORE_ERROR_RATE <= hi
    assert noisy["false_negative_rate"]["count"] == 0
    # ... and exactly what the backend did on these episodes, by its own raw record.
    records = [json.loads(line) for line in (oracle_run / "meta" / "dsrl_episodes.jsonl").read_text().splitlines()]
    raws = [r["labels"]["sim_truth_noisy"]["raw"] for r in records]
    flipped = sum(raw["success_flipped"] for raw, r in zip(raws, records) if not r["labels"]["human"]["success"])
    assert noisy["false_positive_rate"]["count"] == flipped
    assert noisy["mae"]["value"] == pytest.approx(2 * np.mean([raw["score_moved"] for raw in raws]))
    assert noisy["pairwise_accuracy"]["value"] < truth["pairwise_accuracy"]["value"]
    assert noisy["kendall_tau"]["value"] < truth["kendall_tau"]["value"]


def test_audit_command_prints_a_table_and_writes_json_and_png(oracle_run, tmp_path, capsys):
    assert main(["audit", str(oracle_run), "--out", str(tmp_path), "--resamples", "300"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert "Reward backends against the human" in captured.err and "sim_truth_noisy" in captured.err
    written = json.loads((tmp_path / "audit.json").read_text())
    assert out["backends"]["sim_truth_noisy"]["false_positive_rate"] == written["backends"]["sim_truth_noisy"]["false_positive_rate"]["value"]
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Repeatable: the bootstrap has a fixed seed.
    assert audit_run(oracle_run, resamples=300)["backends"] == written["backends"]


def test_noisy_backend_validates_its_rates_and_keeps_scores_on_the_scale():
    with pytest.raises(ValueError, match="false_positive_rate must lie in"):
        NoisyBackend(SimTruthBackend(), false_positive_rate=1.5)

    class Fixed:
        name, offers = "fixed", frozenset({"episode_score"})

        def __init__(self, score):
            self.score = score

        def score_episode(self, clip):
            return EpisodeScore(reward=0.0, success=False, score=self.score)

    clip = EpisodeClip(frames={}, instruction="x", fps=5.0)
    for score, moved in ((1.2, 3), (3.0, 5), (4.4, 2), (5.0, 3)):
        backend = NoisyBackend(Fixed(score), score_error_rate=1.0)
        assert backend.score_episode(clip).score == moved


def test_audit_names_each_missing_or_unreadable_file_and_audits_the_rest(tmp_path, capsys):
    from damaged_runs import EPISODES, PROBLEMS, flat, record_damaged_run

    run_dir = record_damaged_run(tmp_path / "run")
    result = audit_run(run_dir, resamples=50)
    assert result["file_problems"] == PROBLEMS
    assert result["labelled_episodes"] == EPISODES and result["backends"]["sim_truth"]["episodes"] == EPISODES
    assert main(["audit", str(run_dir), "--out", str(tmp_path), "--resamples", "50"]) == 0
    captured = capsys.readouterr()
    assert all(problem in flat(captured.err) for problem in PROBLEMS) and "sim_truth" in captured.err
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["file_problems"] == PROBLEMS and out["backends"]["sim_truth"]["episodes"] == EPISODES
    assert json.loads((tmp_path / "audit.json").read_text())["file_problems"] == PROBLEMS
