import json
import subprocess
import sys
from pathlib import Path

from dsrl_real.cli import main


def test_rollout_prints_success_rate_json(capsys):
    assert main(["rollout", "run.episodes=3", "cameras=[]"]) == 0
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


SMALL = ["cameras=[]", "demos.episodes=3", "pretrain.steps=20", "pretrain.eval_every=10",
         "pretrain.checkpoint_every=10", "pretrain.batch_size=32", "policy.hidden_dim=32", "policy.embed_dim=16"]


def test_demo_runs_the_whole_loop_and_reports_base_and_fine_tuned_success(tmp_path, capsys):
    tiny_dsrl = ["train.env_steps=40", "train.warm_start_episodes=1", "train.eval_every_steps=1000", "train.wandb=disabled",
                 "agent.hidden_dim=16", "agent.batch_size=8", "agent.utd=1"]
    assert main(["demo", f"run.out_dir={tmp_path}", "run.eval_episodes=2", *SMALL, *tiny_dsrl]) == 0
    out = _last_json(capsys)
    assert out["episodes"] == 2 and out["base_success_rate"] in (0.0, 0.5, 1.0)
    assert out["algorithm"] == "dsrl_sac" and out["env_steps"] >= 40 and out["fine_tuned_success_rate"] in (0.0, 0.5, 1.0)
    assert (Path(out["run_dir"]) / "dsrl" / "LATEST").is_file()  # the fine-tuned agent is checkpointed
    assert Path(out["policy"]).is_file()
    assert len(list((Path(out["run_dir"]) / "demos").glob("episode_*.npz"))) == 3
    # The pretrained policy drives the robot through `rollout --policy base`.
    assert main(["rollout", "--policy", "base", f"policy.checkpoint={out['policy']}", "run.episodes=1", "cameras=[]"]) == 0
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


def test_pretrain_without_demos_is_one_sentence(tmp_path, capsys):
    assert main(["pretrain", f"pretrain.demos={tmp_path / 'none'}", "cameras=[]"]) == 2
    assert "No episodes in" in capsys.readouterr().err


def test_external_policy_plugs_in_through_config(capsys):
    assert main(["rollout", "--policy", "base", "policy.external=dsrl_real.policies.examples:scaled_noise_policy",
                 "run.episodes=1", "cameras=[]"]) == 0
    assert _last_json(capsys)["episodes"] == 1


def test_external_policy_that_is_not_a_base_policy_is_refused(capsys):
    assert main(["rollout", "--policy", "base", "policy.external=dsrl_real.config:PolicyConfig", "cameras=[]"]) == 2
    assert "lacks the BasePolicy members" in capsys.readouterr().err
