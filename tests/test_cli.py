import errno
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import STATE

from dsrl_real import cli
from dsrl_real.analysis.metrics import read_records
from dsrl_real.analysis.report import ReportError
from dsrl_real.cli import main
from dsrl_real.envs.robot_env import StaleFrameError
from dsrl_real.envs.safety import EmergencyStop, UnsafeStateError
from dsrl_real.policies.checkpoint import load_policy
from dsrl_real.recording import RecordedRun
from dsrl_real.robots.widowx import WidowXRobot


def test_rollout_prints_success_rate_json(capsys):
    assert main(["rollout", "run.episodes=3", *STATE]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 3 and out["success_rate"] == 1.0 and out["task"] == "monkey"


def test_bad_override_is_one_sentence_and_exit_code_2(capsys):
    assert main(["config", "robot.speed=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dsrl-real: Unknown config key 'robot.speed'") and "\n" not in err


def test_config_show_resolves_named_config(capsys):
    assert main(["config", "--config", "sim_drawer"]) == 0
    assert "name: drawer" in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "dsrl_real.cli", "config"], capture_output=True, text=True, check=True)
    assert "kind: sim" in out.stdout


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


SMALL = [*STATE, "demos.episodes=3", "pretrain.steps=20", "pretrain.eval_every=10",
         "pretrain.checkpoint_every=10", "pretrain.batch_size=32", "policy.hidden_dim=32", "policy.embed_dim=16"]


def test_demo_runs_the_whole_loop_and_reports_base_and_fine_tuned_success(tmp_path, capsys):
    tiny_dsrl = ["train.env_steps=40", "train.warm_start_episodes=1", "train.eval_every_steps=1", "train.eval_episodes=1", "task.max_steps=12", "train.wandb=disabled",
                 "agent.hidden_dim=16", "agent.batch_size=8", "agent.utd=1"]
    assert main(["demo", f"run.out_dir={tmp_path}", "run.eval_episodes=2", *SMALL, *tiny_dsrl]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out.strip().splitlines()[-1])
    assert out["episodes"] == 2 and out["base_success_rate"] in (0.0, 0.5, 1.0)
    assert out["algorithm"] == "dsrl_sac" and out["env_steps"] >= 40 and out["fine_tuned_success_rate"] in (0.0, 0.5, 1.0)
    assert out["observations"] == "state: proprio + object_state (privileged, simulation only)"
    assert "observations: state: proprio + object_state (privileged, simulation only)\n" in printed.err
    assert (Path(out["run_dir"]) / "dsrl" / "LATEST").is_file()  # the fine-tuned agent is checkpointed
    # `report` takes the folder the demo prints, and reads the training run in it.
    assert main(["report", out["run_dir"]]) == 0
    report = _last_json(capsys)
    assert report["json"] == str(Path(out["run_dir"]) / "dsrl" / "report.json") and report["success_rate"] is not None
    assert report["observations"] == "state: proprio + object_state (privileged, simulation only)"
    first = json.loads(Path(report["json"]).read_text())["learning_curve"][0]  # the curve starts at the base policy
    assert (first["env_steps"], first["success_rate"], first["ci95"]) == (0, out["base_success_rate"], out["base_success_ci95"])
    # Base and fine-tuned on run.eval_episodes scenes, the curve's points between them on train.eval_episodes.
    curve = [r["episodes"] for r in read_records(Path(out["run_dir"]) / "dsrl" / "metrics.jsonl") if r["kind"] in ("eval", "final_eval")]
    assert curve[0] == curve[-1] == 2 and set(curve[1:-1]) == {1} and len(curve) >= 3
    assert Path(out["policy"]).is_file()
    demos = RecordedRun(Path(out["run_dir"]) / "demos")  # a LeRobot dataset
    assert len(demos.records) == 3 and {r["kind"] for r in demos.records} == {"demo"}
    # The pretrained policy drives the robot through `rollout --policy base`.
    assert main(["rollout", "--policy", "base", f"policy.checkpoint={out['policy']}", "run.episodes=1", *STATE]) == 0
    assert _last_json(capsys)["episodes"] == 1


def test_pretrain_refuses_to_overwrite_and_resumes(tmp_path, capsys):
    demos = tmp_path / "demos"
    assert main(["collect-demos", f"demos.out_dir={demos}", *SMALL]) == 0
    assert _last_json(capsys)["episodes"] == 3
    args = ["pretrain", f"pretrain.demos={demos}", f"pretrain.out_dir={tmp_path / 'p'}", *SMALL]
    assert main(args) == 0 and _last_json(capsys)["steps"] == 20
    assert main(args) == 2
    assert "already holds a policy; pass --resume" in capsys.readouterr().err
    assert main(["pretrain", "--resume", *args[1:-len(SMALL)], *SMALL, "pretrain.steps=30"]) == 0
    assert _last_json(capsys)["steps"] == 30


def test_pretrain_reads_the_action_bounds_from_the_config_without_connecting_to_the_robot(tmp_path, capsys, monkeypatch):
    demos = tmp_path / "demos"
    assert main(["collect-demos", f"demos.out_dir={demos}", *SMALL]) == 0

    def unreachable(cls, cfg):
        raise ConnectionError("no WidowX driver is running")

    monkeypatch.setattr(WidowXRobot, "connect", classmethod(unreachable))
    args = ["pretrain", f"pretrain.demos={demos}", f"pretrain.out_dir={tmp_path / 'p'}", *SMALL,
            "robot.kind=widowx", "env.object_state=false", "policy.vector_keys=[proprio]",  # no robot has object_state
            "safety.max_step_xyz=0.02", "safety.max_step_rpy=0.1"]
    assert main(args) == 0
    norm = load_policy(_last_json(capsys)["policy"]).normalization
    np.testing.assert_array_equal(norm.action_bound_low, np.array([-0.02] * 3 + [-0.1] * 3 + [0.0], np.float32))
    np.testing.assert_array_equal(norm.action_bound_high, np.array([0.02] * 3 + [0.1] * 3 + [1.0], np.float32))


def test_pretrain_without_demos_is_one_sentence(tmp_path, capsys):
    assert main(["pretrain", f"pretrain.demos={tmp_path / 'none'}", *STATE]) == 2
    assert "No episodes in" in capsys.readouterr().err


def test_external_policy_plugs_in_through_config(capsys):
    assert main(["rollout", "--policy", "base", "policy.external=dsrl_real.policies.examples:scaled_noise_policy",
                 "run.episodes=1", *STATE]) == 0
    assert _last_json(capsys)["episodes"] == 1


def test_external_policy_that_is_not_a_base_policy_is_refused(capsys):
    assert main(["rollout", "--policy", "base", "policy.external=dsrl_real.config:PolicyConfig", *STATE]) == 2
    assert "lacks the BasePolicy members" in capsys.readouterr().err


# ---- every expected error is one sentence and exit code 2; a traceback only with --debug ----------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dsrl_real.cli", *args], capture_output=True, text=True)


def test_a_bad_value_is_one_line_on_stderr_with_exit_code_2_and_no_traceback():
    out = _cli("config", "agent.gamma=2")
    assert (out.returncode, out.stdout, out.stderr) == (2, "", "dsrl-real: agent.gamma = 2.0 is out of range; it must be in [0, 1).\n")


def test_debug_shows_the_traceback_before_or_after_the_command():
    for args in (("--debug", "config", "robot.control_hz=nan"), ("config", "--debug", "robot.control_hz=nan")):
        out = _cli(*args)
        assert out.returncode == 2
        assert "Traceback (most recent call last)" in out.stderr and "dsrl_real.config.ConfigError: robot.control_hz = nan" in out.stderr
        assert out.stderr.endswith("dsrl-real: robot.control_hz = nan is not a finite number; it must be in (0, 1000].\n")


def _raising(monkeypatch, err: BaseException) -> None:
    def command(args):
        raise err
    monkeypatch.setattr(cli, "_cmd_config", command)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize(("err", "sentence"), [
    (ReportError("No recorded episodes in 'x'; record a run first."), "No recorded episodes in 'x'; record a run first."),
    (UnsafeStateError("The robot reported a pose that is not finite."), "The robot reported a pose that is not finite."),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "runs/x/meta/info.json"),
     "'runs/x/meta/info.json' does not exist; check the path."),
    (PermissionError(errno.EACCES, "Permission denied", "/root/runs"),
     "'/root/runs' cannot be accessed (permission denied); check its permissions or choose another path."),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "runs/demos"),
     "'runs/demos' is a folder where a file was expected; give the path of a file."),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "notes.txt/train"),
     "'notes.txt/train' runs through a file where a folder was expected; choose another path."),
    (OSError(errno.ENOSPC, "No space left on device", "runs/train/metrics.jsonl"),
     "'runs/train/metrics.jsonl' could not be written: the disk is full; free some space or choose an output folder on another disk."),
    (OSError(errno.ENOSPC, "No space left on device"),
     "A file could not be written: the disk is full; free some space or choose an output folder on another disk."),
    (ModuleNotFoundError("No module named 'rclpy'", name="rclpy"),
     "The Python module 'rclpy' is not installed; install it for the robot, camera or reward model the config chose "
     "(run with --debug to see where it was needed)."),
    (ImportError("The RealSense camera needs pyrealsense2; pip install pyrealsense2."),
     "The RealSense camera needs pyrealsense2; pip install pyrealsense2."),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
     "Connection refused; check the files, folders and servers the command uses (run with --debug for the details)."),
])
def test_expected_errors_are_one_sentence_and_exit_code_2(monkeypatch, capsys, err, sentence):
    _raising(monkeypatch, err)
    assert main(["config"]) == 2
    assert _one_line(capsys) == f"dsrl-real: {sentence}"


@pytest.mark.parametrize(("err", "code"), [(EmergencyStop("Emergency stop: the arm holds still."), 3),
                                           (StaleFrameError("The wrist frame is 0.9 s old; the arm was stopped."), 1)])
def test_emergency_stop_and_stale_frames_keep_their_exit_codes(monkeypatch, capsys, err, code):
    _raising(monkeypatch, err)
    assert main(["config"]) == code
    assert _one_line(capsys) == f"dsrl-real: {err}"


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    _raising(monkeypatch, KeyboardInterrupt())
    assert main(["config"]) == 130
    assert _one_line(capsys) == "dsrl-real: Interrupted."


def test_a_bug_is_one_line_pointing_to_its_saved_traceback_and_raises_with_debug(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _raising(monkeypatch, ZeroDivisionError("float division by zero"))
    assert main(["config"]) == 1
    line = _one_line(capsys)
    saved = next(tmp_path.glob("dsrl-real-error-*.txt"))
    assert line == (f"dsrl-real: Unexpected ZeroDivisionError: float division by zero; this is a bug in dsrl-real, please report "
                    f"it with the command you ran (its traceback is in {saved}; --debug shows it here).")
    assert "Traceback (most recent call last)" in saved.read_text() and "ZeroDivisionError: float division by zero" in saved.read_text()
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "config"])


def test_an_out_dir_that_is_a_file_is_one_sentence(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    assert main(["collect-demos", f"demos.out_dir={file / 'demos'}", "demos.episodes=1", *STATE, "demos.format=npz"]) == 2
    err = capsys.readouterr().err  # after the progress bar's line
    assert "Traceback" not in err and err.endswith(
        f"\ndsrl-real: '{file / 'demos'}' runs through a file where a folder was expected; choose another path.\n")
    assert main(["collect-demos", f"demos.out_dir={file / 'demos'}", "demos.episodes=1", *STATE]) == 2  # a recording
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith(
        f"\ndsrl-real: Cannot write into '{file / 'demos'}' (Not a directory); choose another run directory.\n")
    assert file.read_text() == "not a folder"


@pytest.mark.parametrize(("args", "sentence"), [
    (["eval", "--episodes", "-1"], "argument --episodes: '-1' is not a number of trials; give an integer from 0 to 1000000"),
    (["eval", "--episodes", "ten"], "argument --episodes: 'ten' is not a number of trials; give an integer from 0 to 1000000"),
    (["audit", "runs/x", "--resamples", "0"],
     "argument --resamples: '0' is not a number of resamples; give an integer from 1 to 1000000"),
    (["score", "--backend", "roboreward", "--video", "a.mp4", "--task", "t", "--num-frames", "-3"],
     "argument --num-frames: '-3' is not a number of frames; give an integer from 0 to 256"),
])
def test_numeric_arguments_out_of_range_are_refused_in_words(capsys, args, sentence):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {sentence}")
