"""The DSRL training loop on the simulator: transitions, warm start, resume, evaluation, metrics."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import STATE

from dsrl_real.config import ConfigError, load_config
from dsrl_real.policies.examples import ScaledNoisePolicy
from dsrl_real.train.trainer import DSRLTrainer

EXTERNAL = "policy.external=dsrl_real.policies.examples:scaled_noise_policy"
STATE_LABEL = "state: proprio + object_state (privileged, simulation only)"
FAST = [*STATE, EXTERNAL, "train.wandb=disabled", "train.eval_episodes=2", "train.eval_every_steps=100000",
        "train.warm_start_episodes=2", "agent.hidden_dim=32", "agent.batch_size=16", "agent.utd=2", "task.max_steps=12"]


def make_trainer(tmp_path, *overrides, policy=None):
    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path}", *overrides])
    return DSRLTrainer(cfg, policy=policy)


class CountingPolicy(ScaledNoisePolicy):
    """Counts denoising calls on single observations (the acting path)."""

    def __init__(self):
        super().__init__()
        self.acting_calls = []

    def sample(self, obs, noise):
        chunk = super().sample(obs, noise)
        if len(noise) == 1:
            self.acting_calls.append((np.array(noise[0]), chunk[0]))
        return chunk


def test_each_chunk_is_denoised_once_and_stored_as_executed(tmp_path):
    policy = CountingPolicy()
    trainer = make_trainer(tmp_path, "train.env_steps=24", policy=policy)
    trainer.run()
    batch = trainer.buffer.sample(64, np.random.default_rng(0))
    stored = {tuple(np.round(w.ravel(), 6)): c for w, c in zip(batch["noise"], batch["actions"])}
    played = {tuple(np.round(w.ravel(), 6)): c for w, c in policy.acting_calls}
    for key, chunk in stored.items():
        np.testing.assert_array_equal(chunk, played[key])  # the stored chunk is the one denoised and executed
    # One denoising per chunk step: 2 training episodes x 3 chunks, plus 2 evaluations (start, end) x 2 episodes x 3.
    assert len(trainer.buffer) == 6 and len(policy.acting_calls) == 6 + 12


def test_time_limit_truncates_and_success_terminates_in_the_buffer(tmp_path):
    trainer = make_trainer(tmp_path, "train.env_steps=36")
    trainer.run()
    batch = trainer.buffer.sample(256, np.random.default_rng(0))
    last = batch["terminated"] | batch["truncated"]
    assert np.all(batch["truncated"][last] != batch["terminated"][last])
    assert batch["truncated"].any()  # the scaled-noise toy policy never succeeds: every episode hits the limit
    assert not batch["terminated"].any() and np.all(batch["reward"] == 0)


def test_the_learner_samples_n_step_batches(tmp_path):
    trainer = make_trainer(tmp_path, "train.env_steps=36", "agent.n_step=2", "agent.gamma=0.5")
    seen = []
    update = trainer.agent.update
    trainer.agent.update = lambda batch, denoise=None: seen.append(batch) or update(batch, denoise)
    trainer.run()
    assert seen
    batch = seen[-1]
    assert batch["features"].shape[:2] == (2, 16)  # agent.utd minibatches of agent.batch_size
    # Three 12-step episodes of 4-step chunks, 3 transitions each (4 slots): t = 0, 1 sum two transitions,
    # t = 2 only itself, and the sums that reach the time limit (t = 1, 2) carry its truncation.
    steps, t = batch["bootstrap_steps"], batch["index"] % 4
    np.testing.assert_array_equal(steps, np.where(t == 2, 1.0, 2.0))
    np.testing.assert_array_equal(batch["truncated"], t >= 1)
    after = (batch["index"] + steps.astype(int)) % trainer.buffer.capacity
    np.testing.assert_array_equal(batch["next_features"], trainer.buffer._features[after])


def test_resume_continues_exactly_and_loses_no_transition(tmp_path):
    straight = make_trainer(tmp_path / "a", "train.env_steps=60")
    straight.run()
    first = make_trainer(tmp_path / "b", "train.env_steps=36")
    first.run()  # stops (as if killed) after its final checkpoint
    resumed = make_trainer(tmp_path / "b", "train.env_steps=60")
    resumed.run(resume=True)
    assert (resumed.episodes, resumed.env_steps, len(resumed.buffer)) == (straight.episodes, straight.env_steps, len(straight.buffer))
    jax.tree_util.tree_map(np.testing.assert_array_equal, straight.agent.state_dict(), resumed.agent.state_dict())
    a = straight.buffer.sample(32, np.random.default_rng(straight.sample_rng.bit_generator.state["state"]["state"] % 2**32))
    b = resumed.buffer.sample(32, np.random.default_rng(resumed.sample_rng.bit_generator.state["state"]["state"] % 2**32))
    np.testing.assert_array_equal(a["features"], b["features"])  # the next batch is the same
    np.testing.assert_array_equal(a["noise"], b["noise"])


def test_step_penalty_reward_form(tmp_path):
    trainer = make_trainer(tmp_path, "train.env_steps=24", "reward.form=step_penalty")
    trainer.run()
    batch = trainer.buffer.sample(64, np.random.default_rng(0))
    assert np.all(batch["reward"] == -1.0)  # the toy policy never succeeds: -1 for every chunk step


def test_starting_over_an_existing_run_or_resuming_nothing_is_refused(tmp_path):
    from dsrl_real.config import ConfigError

    make_trainer(tmp_path, "train.env_steps=12").run()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        make_trainer(tmp_path, "train.env_steps=24").run()
    with pytest.raises(ConfigError, match="Nothing to resume"):
        make_trainer(tmp_path / "empty", "train.env_steps=24").run(resume=True)


def test_sigkill_mid_run_then_resume_keeps_every_finished_episode(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "dsrl_real.cli", "train", *FAST, f"train.out_dir={out}"]
    proc = subprocess.Popen([*args, "train.env_steps=100000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pointer = out / "LATEST"
        while not (pointer.exists() and int(pointer.read_text().split("_")[1]) >= 3):
            assert proc.poll() is None, "the training process died on its own"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    episodes_saved = json.loads((out / "checkpoints" / pointer.read_text() / "counters.json").read_text())["episodes"]
    assert episodes_saved >= 3
    done = subprocess.run([*args, "--resume", f"train.env_steps={12 * (episodes_saved + 2)}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["episodes"] == episodes_saved + 2
    trainer = make_trainer(out, f"train.env_steps={12 * (episodes_saved + 2)}")
    assert trainer.restore() and trainer.buffer.num_episodes_started == episodes_saved + 2


def test_metrics_curve_and_eval_command(tmp_path, capsys):
    from dsrl_real.cli import main

    assert main(["train", *FAST, f"train.out_dir={tmp_path}", "train.env_steps=24", "train.eval_every_steps=12",
                 "train.final_eval_episodes=3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env_steps"] >= 24 and 0.0 <= result["final_success_rate"] <= 1.0
    assert result["observations"] == STATE_LABEL
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r.get("observations") for r in records if r["kind"] in ("eval", "final_eval")} == {STATE_LABEL}
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "eval" and kinds.count("episode") == result["episodes"] and kinds[-1] == "final_eval"
    # Periodic evaluations at 0 (the base policy, on the final evaluation's final_eval_episodes scenes) and after
    # 12 steps (eval_episodes trials); none at the budget's end, where the final evaluation follows.
    periodic = [r for r in records if r["kind"] == "eval"]
    assert [r["env_steps"] >= 12 for r in periodic] == [False, True] and all(r["env_steps"] < 24 for r in periodic)
    assert [r["episodes"] for r in periodic] == [3, 2] and records[-1]["episodes"] == 3
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert main(["eval", *FAST, f"train.out_dir={tmp_path}", "--episodes", "3"]) == 0
    evaluation = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluation["episodes"] == 3 and len(evaluation["ci95"]) == 2 and evaluation["observations"] == STATE_LABEL


class ExpertUnlessLargeNoise(ScaledNoisePolicy):
    """A base policy whose success depends on its noise: one action per chunk, the scripted expert's,
    except that it holds still where |w[0, 0]| > 1.6. The base policy's w ~ N(0, I) is that large on
    one step in nine, and the DSRL actor's noise never (it lies within agent.action_magnitude = 1.5)."""

    def __init__(self, env):
        from dsrl_real.sim.expert import ScriptedExpert

        super().__init__(chunk_size=1)
        self.expert = ScriptedExpert(env.scene.sim)

    def sample(self, obs, noise):
        action = self.expert.act()
        if abs(noise[0][0][0]) > 1.6:
            action[:6] = 0.0
        return action[None, None]


def test_the_learning_curve_starts_at_the_base_policys_success(tmp_path, monkeypatch):
    from dsrl_real.analysis.report import summarize_run
    from dsrl_real.envs.make import build_env
    from dsrl_real.policies import pipeline

    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path / 'run'}", "train.env_steps=14", "train.eval_episodes=4",
                                 "task.max_steps=14"])  # the expert needs 10 to 13 steps on these scenes: a stall can fail it
    env = build_env(cfg)
    trainer = DSRLTrainer(cfg, env=env, policy=ExpertUnlessLargeNoise(env))
    try:
        trainer.run()
    finally:
        trainer.close()
    eval_env = build_env(cfg)
    monkeypatch.setattr(pipeline, "build_env", lambda cfg: eval_env)
    base = pipeline.base_success(cfg, ExpertUnlessLargeNoise(eval_env), 4)  # as `dsrl-real demo` evaluates it
    assert base["success_rate"] == 0.75  # one of the four scenes failed by a stall: not what the actor's noise gives
    first = summarize_run(tmp_path / "run")["learning_curve"][0]
    assert (first["env_steps"], first["success_rate"], first["ci95"], first["final"]) == (0, 0.75, base["ci95"], False)


def test_wandb_offline_needs_no_account(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    trainer = make_trainer(tmp_path, "train.env_steps=12", "train.wandb=offline")
    trainer.run()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1


def tiny_diffusion_policy(env):
    from dsrl_real.config import PolicyConfig
    from dsrl_real.policies.diffusion import DiffusionPolicy, Normalization, init_params

    cfg = PolicyConfig(vector_keys=["proprio", "object_state"], image_keys=[], hidden_dim=16, embed_dim=8, inference_steps=2)
    low, high = env.action_space.low, env.action_space.high
    obs = {k: np.zeros((1, *s.shape), np.float32) for k, s in env.observation_space.spaces.items()}
    norm = Normalization.fit({k: obs[k] for k in cfg.vector_keys}, np.stack([low, high]), low, high)
    shell = DiffusionPolicy(cfg, 7, norm, None)
    return DiffusionPolicy(cfg, 7, norm, init_params(cfg, 7, shell.prepare(obs), jax.random.PRNGKey(0)))


@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_both_algorithms_train_from_a_diffusion_policy(tmp_path, algorithm):
    from dsrl_real.envs.make import make_sim_env

    policy = tiny_diffusion_policy(make_sim_env(cameras=(), seed=0))
    trainer = make_trainer(tmp_path, "train.env_steps=36", f"agent.algorithm={algorithm}", "agent.na_distill_steps=2", policy=policy)
    result = trainer.run()
    assert result["label"] == algorithm and trainer.agent.step > 0
    assert trainer.features.use_embedding and trainer.agent.obs_dim == 7 + 6 + 8  # proprio + object state + embedding


def test_action_space_sac_baseline_runs_on_the_same_loop(tmp_path):
    trainer = make_trainer(tmp_path, "train.env_steps=24", "train.action_space_baseline=true")
    result = trainer.run()
    assert result["label"] == "sac_action_space" and trainer.agent.noise_shape == (1, 7)
    chunk = trainer.policy.sample({}, np.array([[[-1, 1, 0, 0, 0, 0, 1]]], np.float32))
    np.testing.assert_allclose(chunk[0, 0, :2], [-0.05, 0.05])


def test_action_space_baseline_can_read_the_base_policys_frozen_embedding(tmp_path):
    from dsrl_real.envs.make import make_sim_env

    policy = tiny_diffusion_policy(make_sim_env(cameras=(), seed=0))
    trainer = make_trainer(tmp_path, "train.env_steps=24", "train.action_space_baseline=true",
                           "train.action_space_features=policy_embedding", policy=policy)
    obs = {"proprio": np.full((1, 7), 0.1, np.float32), "object_state": np.full((1, 6), 0.2, np.float32)}
    np.testing.assert_array_equal(trainer.features(obs)[:, 13:], policy.embed(obs))
    result = trainer.run()
    assert result["label"] == "sac_action_space" and trainer.agent.noise_shape == (1, 7)
    assert trainer.agent.obs_dim == 7 + 6 + 8 and trainer.agent.step > 0  # proprio + object state + embedding
    chunk = trainer.policy.sample(obs, np.array([[[-1, 1, 0, 0, 0, 0, 1]]], np.float32))
    np.testing.assert_allclose(chunk[0, 0, :2], [-0.05, 0.05])  # it acts in the action box, not through the policy


def test_action_space_baseline_on_the_embedding_needs_a_base_policy(tmp_path):
    with pytest.raises(ConfigError, match="No base policy given; set policy.checkpoint"):
        make_trainer(tmp_path, "policy.external=", "train.action_space_baseline=true", "train.action_space_features=policy_embedding")


def test_training_videos_are_written_as_readable_mp4(tmp_path):
    import imageio.v3 as iio

    trainer = make_trainer(tmp_path, "train.env_steps=12", "train.video_every_episodes=1",
                           "cameras=[{name: third_person, view: third_person, width: 32, height: 32}]")
    trainer.run()
    videos = sorted((tmp_path / "videos").glob("train_third_person_*.mp4"))
    assert len(videos) == trainer.episodes == 1
    frames = iio.imread(videos[0], plugin="pyav")
    assert frames.shape == (13, 32, 32, 3)  # the reset frame plus 12 steps


@pytest.mark.parametrize("algorithm, kept", [
    ("dsrl_sac", {"proprio", "object_state"}),  # the agent reads stored features; nobody reads the frames
    ("dsrl_na", {"proprio", "object_state", "third_person_image"}),  # NA re-denoises: the policy's inputs stay
])
def test_the_buffer_keeps_only_the_observations_the_learner_reads(tmp_path, algorithm, kept):
    class ReadsOneCamera(ScaledNoisePolicy):
        input_keys = ("proprio", "object_state", "third_person_image")

    cameras = "cameras=[{name: third_person, width: 16, height: 16}, {name: wrist, view: wrist, width: 16, height: 16}]"
    trainer = make_trainer(tmp_path, cameras, f"agent.algorithm={algorithm}", "train.env_steps=12", "train.record=false",
                           policy=ReadsOneCamera())
    trainer.run()
    assert set(trainer.buffer.sample(4, np.random.default_rng(0))["obs"]) == kept
