"""`dsrl-real report`: a run's learning curve, success over time, agreement, robot time and safety."""

import json

import numpy as np
import pytest

from dsrl_real.analysis.audit import audit_run, summary
from dsrl_real.analysis.metrics import MetricsLogger
from dsrl_real.analysis.report import ReportError, summarize_run
from dsrl_real.cli import main
from dsrl_real.recording import RecordedRun, RunRecorder

# kind, steps, steps with a safety intervention, success, the human's and the backend's success
EPISODES = [
    ("warm_start", 5, [1], False, False, True),
    ("warm_start", 4, [], True, True, True),
    ("train", 6, [0, 2], False, False, False),
    ("train", 3, [], True, True, True),
    ("train", 5, [4], True, True, False),
    ("eval", 4, [], True, True, True),
]


@pytest.fixture
def run_dir(tmp_path):
    return record_run(tmp_path)


def record_run(folder):
    """A recorded training run of EPISODES with its metrics, in `folder`."""
    with RunRecorder(folder, [], 5.0) as rec:
        for i, (kind, steps, unsafe, success, human, backend) in enumerate(EPISODES):
            ep = rec.begin_episode(kind, i, "pull the drawer out")
            for t in range(steps):
                ep.add_step(action=np.zeros(7, np.float32), reward=0.0, safety_intervened=t in unsafe, overrun=t == 0 and i == 0)
            ep.add_step(proprio=np.zeros(7, np.float32))
            labels = {"human": {"success": human, "reward": float(human)},
                      "roboreward": {"score": 5 if backend else 2, "success": backend, "reward": 1.0 if backend else 0.25}}
            ep.finish(success=success, terminated=success, truncated=not success, labels=labels)
        ep = rec.begin_episode("train", 99, "pull the drawer out")
        ep.add_step(action=np.zeros(7, np.float32), safety_intervened=True)
        ep.abort("KeyboardInterrupt")
    logger = MetricsLogger(folder, wandb_mode="disabled")
    logger.log("eval", 0, label="dsrl_sac", env_steps=0, success_rate=0.25, ci95=[0.1, 0.5], episodes=4)
    logger.log("episode", 9, episode=1, reward=0.0, success=False)
    logger.log("eval", 20, label="dsrl_sac", env_steps=20, success_rate=0.5, ci95=[0.2, 0.8], episodes=4)
    logger.log("final_eval", 27, label="dsrl_sac", env_steps=27, success_rate=0.75, ci95=[0.3, 0.95], episodes=4)
    return folder


def test_report_summarises_episodes_time_safety_agreement_and_the_learning_curve(run_dir):
    s = summarize_run(run_dir)
    records = RecordedRun(run_dir).records
    assert s["robot_time_s"] == pytest.approx(sum(r["wall_time_s"] for r in records), abs=1e-3)
    assert s["kinds"]["warm_start"]["episodes"] == 2 and s["kinds"]["warm_start"]["successes"] == 1
    train = s["kinds"]["train"]
    assert (train["episodes"], train["partial"], train["successes"], train["success_rate"]) == (4, 1, 2, 2 / 3)
    assert train["env_steps"] == 6 + 3 + 5 + 1 and train["safety_interventions"] == 2 + 0 + 1 + 1
    assert s["total"]["safety_interventions"] == 5 and s["total"]["overruns"] == 1 and s["total"]["episodes"] == 7
    assert s["success_over_time"]["train"]["success"] == [False, True, True]  # the partial episode has no outcome
    assert s["success_over_time"]["train"]["env_steps"] == [5 + 4 + 6, 5 + 4 + 6 + 3, 5 + 4 + 6 + 3 + 5]
    assert s["success_over_time"]["train"]["rolling_10"] == [0.0, 0.5, pytest.approx(2 / 3)]
    assert [(p["env_steps"], p["success_rate"], p["final"]) for p in s["learning_curve"]] == [(0, 0.25, False), (20, 0.5, False), (27, 0.75, True)]
    assert s["training_episodes"] == [{"env_steps": 9, "reward": 0.0, "success": False}]
    # Agreement: roboreward calls the human's failure in episode 0 a success, and misses the success in episode 4.
    agreement = s["agreement"]["backends"]["roboreward"]
    assert agreement["false_positive_rate"] == 0.5 and agreement["false_negative_rate"] == 0.25
    assert s["agreement"]["backends"] == summary(audit_run(run_dir, resamples=10))


def test_report_command_writes_json_and_png_and_prints_a_table(run_dir, tmp_path_factory, capsys):
    out_dir = tmp_path_factory.mktemp("report")
    assert main(["report", str(run_dir), "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["episodes"] == 7 and out["success_rate"] == pytest.approx(4 / 6)
    assert "warm_start" in captured.err and "roboreward: MAE -" in captured.err and "Last evaluation: 75%" in captured.err
    assert json.loads((out_dir / "report.json").read_text())["kinds"]["eval"]["successes"] == 1
    assert (out_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_recordings_or_labels_says_so(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds neither recorded episodes (meta/run.json) nor metrics.jsonl" in err and "\n" not in err
    MetricsLogger(tmp_path, wandb_mode="disabled").log("eval", 0, env_steps=0, success_rate=0.5, ci95=[0.2, 0.8])
    s = summarize_run(tmp_path)
    assert s["agreement"] == {"note": "No recorded episodes, so no labels to compare."} and s["robot_time_s"] == 0
    with pytest.raises(ReportError):
        summarize_run(tmp_path / "missing")


def test_report_names_each_missing_or_unreadable_file_and_reports_the_rest(tmp_path, capsys):
    from damaged_runs import EPISODES, PROBLEMS, flat, record_damaged_run

    run_dir = record_damaged_run(tmp_path / "run")
    s = summarize_run(run_dir)
    assert s["file_problems"] == PROBLEMS
    assert s["total"]["episodes"] == EPISODES and s["kinds"]["baseline"]["partial"] == 0
    assert s["agreement"]["labelled_episodes"] == EPISODES and set(s["agreement"]["backends"]) == {"sim_truth"}
    assert main(["report", str(run_dir), "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert all(problem in flat(captured.err) for problem in PROBLEMS) and "baseline" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["episodes"] == EPISODES
    assert json.loads((tmp_path / "report.json").read_text())["file_problems"] == PROBLEMS


def test_a_sound_run_reports_no_file_problems_and_a_table_without_a_record_is_named(run_dir):
    assert summarize_run(run_dir)["file_problems"] == []
    table = run_dir / "data" / "chunk-000" / "file-007.parquet"
    table.write_bytes((run_dir / "data" / "chunk-000" / "file-000.parquet").read_bytes())  # left by a lost record
    assert summarize_run(run_dir)["file_problems"] == [
        "'data/chunk-000/file-007.parquet' has no record in 'meta/dsrl_episodes.jsonl'; move it out of the run folder "
        "before recording more into it, or restore 'meta/dsrl_episodes.jsonl' from a copy."]


def record_demos(folder):
    """A recording of demonstrations (no metrics, no checkpoints), as collect-demos writes with demos.format=lerobot."""
    with RunRecorder(folder, [], 5.0) as rec:
        ep = rec.begin_episode("demo", 0, "pull the drawer out")
        ep.add_step(action=np.zeros(7, np.float32), reward=0.0)
        ep.add_step(proprio=np.zeros(7, np.float32))
        ep.finish(success=True, terminated=True, truncated=False)


def test_report_and_audit_read_the_one_run_inside_the_folder_they_are_given(tmp_path, capsys, caplog):
    """The folder `dsrl-real demo` prints holds demos/, policy/ and the training run in dsrl/."""
    record_demos(tmp_path / "demos")  # a recording too, but no training run: the training run is the one meant
    (tmp_path / "policy").mkdir()
    run = record_run(tmp_path / "dsrl")
    assert summarize_run(tmp_path) == summarize_run(run)
    assert [r.getMessage() for r in caplog.records] == [f"'{tmp_path}' holds no run of its own; reading the one in '{run}'."]
    assert main(["report", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["json"] == str(run / "report.json") and out["episodes"] == 7 and (run / "report.png").is_file()
    assert main(["audit", str(tmp_path), "--resamples", "10"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["json"] == str(run / "audit.json") and out["labelled_episodes"] == 6
    assert audit_run(tmp_path, resamples=10)["run_dir"] == str(run)


def test_report_and_audit_refuse_a_folder_whose_subfolders_hold_several_runs(tmp_path, capsys):
    record_run(tmp_path / "seed_1")
    record_run(tmp_path / "seed_0")
    record_demos(tmp_path / "demos")
    sentence = (f"'{tmp_path}' holds no run of its own but its subfolders hold several (demos, seed_0, seed_1); "
                "give the folder of one of them.")
    for command in ("report", "audit"):
        assert main([command, str(tmp_path)]) == 2
        assert capsys.readouterr().err.strip() == f"dsrl-real: {sentence}"
    with pytest.raises(ReportError, match="holds no run of its own but its subfolders hold several"):
        summarize_run(tmp_path)
    record_demos(tmp_path / "only_demos" / "a")
    record_demos(tmp_path / "only_demos" / "b")
    with pytest.raises(ReportError, match=r"subfolders hold several \(a, b\)"):
        summarize_run(tmp_path / "only_demos")
