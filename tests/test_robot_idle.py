"""How long the robot waits for the learner (analysis/robot_idle.py): the episode records of both learner modes,
the live progress line, `dsrl-real report`'s numbers and `dsrl-real bench robot-idle`."""

import json

import pytest
from test_train import FAST, make_trainer

from dsrl_real.analysis.metrics import MetricsLogger
from dsrl_real.analysis.report import summarize_run
from dsrl_real.analysis.robot_idle import progress_line
from dsrl_real.cli import main

# The tests that start a Ray run on one pytest-xdist worker, one after another (README's `--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("ray")

# length, warm start, robot_wait_s, robot_wall_s, gradient_steps_per_env_step, policy_lag
EPISODES = [
    (10, True, 0.0, 2.0, 0.0, 0),  # the warm start: left out
    (10, False, 1.0, 4.0, 3.0, 0),  # 30 gradient steps
    (6, False, 0.0, 2.0, 5.0, 2),  # 30
    (4, False, 3.0, 10.0, 0.5, 1),  # 2
    (10, False, 0.0, 2.0, 90.0, 3),  # the run's last, absorbed at its end (with every gradient step still owed): left out
]


def write_metrics(folder, episodes, seconds=True, finished=True):
    logger = MetricsLogger(folder, wandb_mode="disabled")
    steps = 0
    for i, (length, warm, wait, wall, grad, lag) in enumerate(episodes, 1):
        steps += length
        robot = {"robot_wait_s": wait, "robot_wall_s": wall} if seconds else {}
        logger.log("episode", steps, episode=i, length=length, warm_start=warm, success=False, robot_idle_fraction=wait / wall,
                   gradient_steps_per_env_step=grad, policy_lag=lag, **robot)
    if finished:
        logger.log("final_eval", steps, label="dsrl_sac", env_steps=steps, success_rate=0.5, ci95=[0.1, 0.9], episodes=2)
    logger.close()
    return folder


def test_report_sums_the_robots_waits_and_the_learners_steps_after_the_warm_start(tmp_path, capsys):
    run = write_metrics(tmp_path / "run", EPISODES)
    expected = {"episodes": 3, "env_steps": 20, "robot_idle_fraction": 0.25, "grad_steps_per_env_step": 3.1, "gradient_steps": 62,
                "policy_lag": {"mean": 1.0, "max": 2}, "env_steps_per_s": 1.25, "wall_s": 16.0, "actors": None, "learner_steps_per_s": None}
    assert summarize_run(run)["robot"] == expected  # waits 4 s of 16 s; 62 gradient steps over 20 env steps
    assert main(["report", str(run)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["robot"] == expected
    assert json.loads((run / "report.json").read_text())["robot"] == expected
    row = next(line for line in captured.err.splitlines() if "25.0%" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["3", "20", "25.0%", "3.10", "1.00", "2", "1.25", "0.3"]
    # A run stopped before its end (no final evaluation) absorbed its last episode with the lag it ran with: it counts.
    stopped = summarize_run(write_metrics(tmp_path / "stopped", EPISODES, finished=False))["robot"]
    assert stopped == {"episodes": 4, "env_steps": 30, "robot_idle_fraction": 0.2222, "grad_steps_per_env_step": 32.0667,
                       "gradient_steps": 962, "policy_lag": {"mean": 1.5, "max": 3}, "env_steps_per_s": 1.6667, "wall_s": 18.0,
                       "actors": None, "learner_steps_per_s": None}


def test_records_without_the_seconds_give_the_mean_idle_fraction_and_a_run_without_the_fields_none(tmp_path, capsys):
    run = write_metrics(tmp_path / "older", [(10, False, 1.0, 5.0, 1.0, 0), (10, False, 2.0, 5.0, 1.0, 1), (10, False, 0.0, 5.0, 9.0, 1)],
                        seconds=False)
    robot = summarize_run(run)["robot"]
    assert (robot["robot_idle_fraction"], robot["env_steps_per_s"], robot["wall_s"]) == (0.3, None, None)
    plain = tmp_path / "plain"
    logger = MetricsLogger(plain, wandb_mode="disabled")
    logger.log("episode", 10, episode=1, length=10, warm_start=False, success=False)
    logger.close()
    assert summarize_run(plain)["robot"] is None
    assert main(["report", str(plain)]) == 0
    assert "The robot and the learner" not in capsys.readouterr().err


def test_the_progress_line_shows_the_idle_share_and_in_ray_mode_the_lag():
    record = {"robot_idle_fraction": 0.034, "policy_lag": 2}
    assert progress_line("dsrl_sac", record, ray=True) == "dsrl_sac · robot idle 3% · lag 2"
    assert progress_line("dsrl_sac", record, ray=False) == "dsrl_sac · robot idle 3%"


ACTORS = {"robot": {"episodes": 4, "env_steps": 40, "success_rate": 0.25, "env_steps_per_s": 1.5},
          "sim-1": {"episodes": 9, "env_steps": 90, "success_rate": 0.5, "env_steps_per_s": 6.25},
          "sim-2": {"episodes": 1, "env_steps": 10, "success_rate": 0.0, "env_steps_per_s": None}}


def test_the_report_and_the_progress_line_show_each_actors_pace_and_the_learners(tmp_path, capsys):
    """learner.mode=ray with several actors: the latest counts the learner sent (here with the last record)."""
    run = tmp_path / "fleet"
    logger = MetricsLogger(run, wandb_mode="disabled")
    logger.log("episode", 10, episode=1, length=10, warm_start=False, success=False, robot_idle_fraction=0.0, robot_wait_s=0.0,
               robot_wall_s=5.0, gradient_steps_per_env_step=2.0, policy_lag=1, actors=ACTORS, learner_steps_per_s=31.5)
    logger.close()
    robot = summarize_run(run)["robot"]
    assert (robot["actors"], robot["learner_steps_per_s"]) == (ACTORS, 31.5)
    assert main(["report", str(run)]) == 0
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in capsys.readouterr().err.splitlines() if "│" in line]
    assert ["sim-1", "9", "90", "6.25", "50%", ""] in rows and ["sim-2", "1", "10", "-", "0%", ""] in rows
    assert ["learner", "", "", "", "", "31.50"] in rows
    line = progress_line("dsrl_sac", {"robot_idle_fraction": 0.02, "policy_lag": 3, "actors": ACTORS, "learner_steps_per_s": 31.5},
                         ray=True)
    assert line == "dsrl_sac · robot idle 2% · lag 3 · 3 actors 7.8 env steps/s · learner 31.5 steps/s"


class Progress:
    """Records the descriptions the trainer gives its progress task."""

    def __init__(self):
        self.descriptions = []

    def add_task(self, description, **kwargs):
        return 0

    def update(self, task, description=None, **kwargs):
        if description is not None:
            self.descriptions.append(description)


def test_an_inline_run_records_the_robots_wait_and_its_gradient_steps_as_ray_mode_does(tmp_path):
    progress = Progress()
    make_trainer(tmp_path, "train.env_steps=36").run(progress=progress)
    episodes = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in episodes if r["kind"] == "episode"]
    # As in test_ray_learner's lockstep run: two warm-start episodes, then the 6 transitions (1 update each) and
    # 3 chunk steps, of 2 gradient steps (agent.utd), over 12 env steps per episode.
    assert [r["gradient_steps_per_env_step"] for r in episodes] == [0.0, 1.0, 0.5]
    assert [r["policy_lag"] for r in episodes] == [0, 0, 0]
    for r in episodes:
        assert 0 <= r["robot_wait_s"] <= r["robot_wall_s"]
        assert r["robot_idle_fraction"] == pytest.approx(r["robot_wait_s"] / r["robot_wall_s"], abs=1e-3)
    assert progress.descriptions == [f"dsrl_sac · robot idle {r['robot_idle_fraction']:.0%}" for r in episodes]


TINY = [*FAST, "env.real_time=false", "task.max_steps=8"]  # 2 chunk steps per episode, as fast as it runs


def test_the_robot_idle_bench_reports_both_modes(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)  # the bench's runs go into runs/bench-robot-idle here
    assert main(["bench", "robot-idle", *TINY]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["agent"]["preset"], out["agent"]["hidden_dim"], out["warm_start_episodes"]) == ("widowx_real", 32, 2)
    assert out["observations"] == "state: proprio + object_state (privileged, simulation only)"  # TINY's
    assert (out["env_steps_budget"], out["nominal_grad_steps_per_env_step"], out["machine"]["cores"] >= 1) == ((2 + 5 + 1) * 8, 0.5, True)
    for mode, lag in (("inline", 0), ("ray", 100)):
        run = out[mode]
        assert (run["episodes"], run["env_steps"], run["max_policy_lag"], run["run_episodes"]) == (5, 40, lag, 8)
        assert 0 <= run["robot_idle_fraction"] <= 1 and run["env_steps_per_s"] > 0 and run["wall_s"] > 0
        assert run["policy_lag"]["max"] <= lag
    # Inline mode does every episode's gradient work before the next: 2 updates of 2 steps per 8 env steps.
    assert (out["inline"]["grad_steps_per_env_step"], out["inline"]["policy_lag"]) == (0.5, {"mean": 0.0, "max": 0})


def test_a_bench_without_overrides_refuses_them_in_one_sentence(capsys):
    assert main(["bench", "sim", "agent.utd=2"]) == 2
    assert "dsrl-real bench sim takes no overrides; run it without 'agent.utd=2'." in capsys.readouterr().err
