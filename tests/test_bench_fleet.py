"""`dsrl-real bench fleet` (bench/fleet.py): the same budget with 1 and 2 actors against one learner, on a tiny
base policy and agent; what it prints, not how fast (speed is the bench's, never a test's)."""

import json

import pytest

from dsrl_real.bench import fleet
from dsrl_real.cli import main

# The tests that start a Ray run on one pytest-xdist worker, one after another (README's `--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("ray")

pytest.importorskip("ray")

TINY = ["demos.episodes=2", "pretrain.steps=10", "pretrain.eval_every=10", "pretrain.checkpoint_every=10", "pretrain.batch_size=16",
        "policy.hidden_dim=16", "policy.embed_dim=8", "policy.inference_steps=2", "task.max_steps=12", "agent.hidden_dim=16",
        "agent.batch_size=8", "agent.utd=1", "train.warm_start_episodes=1", "train.env_steps=48", "train.eval_every_steps=24",
        "train.eval_episodes=1", "train.final_eval_episodes=2"]


def test_the_fleet_bench_reports_each_sizes_throughput_curve_and_minutes_to_the_single_actor_runs_final_rate(tmp_path, monkeypatch,
                                                                                                         capsys):
    monkeypatch.chdir(tmp_path)  # the bench's runs go into runs/bench-fleet here
    monkeypatch.setattr(fleet, "FLEET_SIZES", (1, 2))
    assert main(["bench", "fleet", "--obs", "state", *TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["observations"] == "state: proprio + object_state (privileged, simulation only)"
    assert (out["sizes"], out["env_steps_budget"], out["eval_episodes"], out["max_policy_lag"]) == ([1, 2], 48, 2, fleet.MAX_POLICY_LAG)
    assert out["target_success_rate"] == out["actors_1"]["final_success_rate"]
    one, two = out["actors_1"], out["actors_2"]
    assert set(one["env_steps_per_s"]) == {"robot"} and set(two["env_steps_per_s"]) == {"robot", "sim-1"}
    assert one["actor_episodes"]["robot"] == two["actor_episodes"]["robot"] == 4  # the budget is this robot's: 48 env steps
    for run in (one, two):
        # the base policy's evaluation, one on the way (24 env steps) and the final one (at 48, in place of a periodic one)
        assert [c["env_steps"] for c in run["curve"]] == [0, 24, 48]
        minutes = [c["minutes"] for c in run["curve"]]
        assert minutes == sorted(minutes) and minutes[-1] * 60 <= run["wall_s"]
        reached = [c for c in run["curve"] if c["success_rate"] >= out["target_success_rate"]]
        assert run["minutes_to_target"] == (reached[0]["minutes"] if reached else None)
        assert run["learner_steps_per_s"] is not None and run["total_env_steps_per_s"] >= 0
    assert one["minutes_to_target"] is not None  # its own final evaluation reaches its own rate
    assert (tmp_path / out["learning_curve"]).is_file()
