"""The trainer records every episode it runs, shadow backends label them beside the primary one, and
recorded runs seed a later run's replay buffer."""

import json
import logging
import threading

import numpy as np
import pytest
from conftest import STATE

from dsrl_real.analysis.audit import audit_run
from dsrl_real.cli import main
from dsrl_real.config import ConfigError, load_config
from dsrl_real.envs.make import build_env, make_sim_env
from dsrl_real.envs.safety import EmergencyStop
from dsrl_real.policies.examples import ScaledNoisePolicy
from dsrl_real.recording import RecordedRun, RunRecorder
from dsrl_real.recording.shadows import ShadowScorers
from dsrl_real.rewards.base import SimTruthBackend
from dsrl_real.rewards.keyboard import HumanEvent
from dsrl_real.rewards.registry import build_reward_backend
from dsrl_real.rewards.simulated_human import progress_score
from dsrl_real.rollout import EVAL_SEED, scripted_expert, wilson_interval
from dsrl_real.rollout.record import record_episode
from dsrl_real.sim.expert import ScriptedExpert
from dsrl_real.tasks import TaskStatus
from dsrl_real.train.learner import Learner
from dsrl_real.train.trainer import DSRLTrainer

EXTERNAL = "policy.external=dsrl_real.policies.examples:scaled_noise_policy"
FAST = [*STATE, EXTERNAL, "train.wandb=disabled", "train.eval_episodes=2", "train.eval_every_steps=100000",
        "train.warm_start_episodes=2", "agent.hidden_dim=32", "agent.batch_size=16", "agent.utd=2", "task.max_steps=12"]
# The simulated drawer with a coin-flip expert: half the episodes succeed within 8 steps, half fail at 25.
ORACLE = [*STATE, "task.name=drawer", "task.max_steps=25", "train.wandb=disabled", "train.eval_episodes=0",
          "train.eval_every_steps=100000", "train.warm_start_episodes=1000", "agent.hidden_dim=32", "agent.batch_size=16",
          "agent.utd=2", "train.checkpoint_every_episodes=0", "train.buffer_capacity=4000"]
FALSE_POSITIVE_RATE, SCORE_ERROR_RATE = 0.3, 0.25


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def recorded_rows(run_dir, index):
    """An episode's rows as recorded: None where a row had no value (LeRobot's file holds zeros and a valid.* mask)."""
    return RecordedRun(run_dir).table(index).to_pandas()


def f32_bytes(x):
    return np.asarray(x, np.float32).tobytes()


class CountingPolicy(ScaledNoisePolicy):
    """Keeps every (noise, chunk) it denoised for one observation, in order."""

    def __init__(self):
        super().__init__()
        self.acting_calls = []

    def sample(self, obs, noise):
        chunk = super().sample(obs, noise)
        if len(noise) == 1:
            self.acting_calls.append((np.array(noise[0]), np.array(chunk[0])))
        return chunk


class CoinFlipExpert:
    """A base policy of one action per chunk: on episodes whose first noise is positive the scripted
    expert (it acts on the simulator's newest state), else actions made from the noise itself."""

    chunk_size, action_dim, noise_shape = 1, 7, (1, 7)

    def __init__(self, env):
        self.env, self.expert, self.expert_episode = env, ScriptedExpert(env.scene.sim, noise=0.1, seed=0), True

    def sample(self, obs, noise):
        noise = np.asarray(noise, np.float32)
        if self.env.steps == 0:
            self.expert_episode = bool(noise[0, 0, 0] > 0)
        if self.expert_episode:
            return np.repeat(self.expert.act()[None, None], len(noise), axis=0)
        return np.clip(noise * 0.05, self.env.action_space.low, self.env.action_space.high)

    def embed(self, obs):
        return np.zeros((len(obs["proprio"]), 0), np.float32)


# ---- a DSRL run ---------------------------------------------------------------------------------
def test_a_dsrl_run_records_every_episode_with_the_noise_and_the_chunks_it_executed(tmp_path, capsys):
    out = tmp_path / "run"
    camera = "cameras=[{name: third_person, view: third_person, width: 16, height: 16}]"
    policy = CountingPolicy()
    cfg = load_config(overrides=[*FAST, camera, f"train.out_dir={out}", "train.env_steps=36"])
    trainer = DSRLTrainer(cfg, policy=policy)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    assert trainer.recorder is None and result["episodes"] == 3
    records = read_jsonl(out / "meta" / "dsrl_episodes.jsonl")
    # The base policy's evaluation, 2 warm-start episodes, 1 training episode, the final evaluation.
    assert [(r["kind"], r["seed"]) for r in records] == [
        ("eval", EVAL_SEED), ("eval", EVAL_SEED + 1), ("warm_start", 0), ("warm_start", 1), ("train", 2),
        ("eval", EVAL_SEED), ("eval", EVAL_SEED + 1)]
    assert all((r["length"], r["steps"], r["partial"], r["truncated"], r["frames"]) == (13, 12, False, True, {"third_person": 13})
               for r in records)
    calls = iter(policy.acting_calls)  # 3 chunks of 4 actions per episode, in the order they were played
    for r in records:
        rows = recorded_rows(out, r["episode_index"])
        assert rows["action"].iloc[-1] is None and rows["noise"].iloc[-1] is None  # the final observation's row
        for first in (0, 4, 8):
            noise, chunk = next(calls)
            assert rows["noise"].iloc[first].tobytes() == f32_bytes(noise)
            assert rows["chunk"].iloc[first].tobytes() == f32_bytes(chunk)
            for t in range(4):
                assert rows["action"].iloc[first + t].tobytes() == f32_bytes(chunk[t])
                assert t == 0 or rows["noise"].iloc[first + t] is None
        # The primary backend labels the episodes it rewarded: the simulator's final progress, from the rows.
        if r["kind"] == "eval":
            assert r["labels"] == {}
        else:
            assert set(r["labels"]) == {"sim_truth"}
            label = r["labels"]["sim_truth"]
            assert (label["valid"], label["success"], label["reward"]) == (True, False, 0.0)
            assert label["score"] == pytest.approx(1 + 4 * rows["truth.progress"].iloc[-1])
    assert next(calls, None) is None
    # The buffer holds the recorded chunks and noise of the three episodes it trained on.
    batch = trainer.buffer.sample(64, np.random.default_rng(0))
    recorded = {}
    for r in records[2:5]:
        steps = RecordedRun(out).episode(r["episode_index"]).chunk_steps(4)
        recorded.update({f32_bytes(w): c for w, c in zip(steps["noise"], steps["chunks"])})
    assert len(recorded) == 9
    for w, chunk in zip(batch["noise"], batch["actions"]):
        assert recorded[f32_bytes(w)].tobytes() == f32_bytes(chunk)
    metrics = [m for m in read_jsonl(out / "metrics.jsonl") if m["kind"] == "episode"]
    assert [m["record"] for m in metrics] == [2, 3, 4]
    # report reads what the trainer wrote; `dsrl-real eval` adds its trials to the same recording.
    assert main(["report", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {k: v["episodes"] for k, v in report["kinds"].items()} == {"eval": 4, "train": 1, "warm_start": 2}
    capsys.readouterr()
    assert main(["eval", *FAST, camera, f"train.out_dir={out}", "--episodes", "2"]) == 0
    trials = read_jsonl(out / "meta" / "dsrl_episodes.jsonl")[7:]
    assert [(r["kind"], r["seed"], r["train_env_steps"], r["partial"]) for r in trials] == [
        ("eval", EVAL_SEED, 36, False), ("eval", EVAL_SEED + 1, 36, False)]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["episodes"] == 2


# ---- a human-oracle run with shadow backends --------------------------------------------------------
@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    """The simulated human (1-5 scale) gives the reward; the simulator's truth and a noisy variant of it
    label the same episodes in shadow mode."""
    out = tmp_path_factory.mktemp("oracle")
    cfg = load_config(overrides=[*ORACLE, f"train.out_dir={out}", "train.env_steps=1000", "reward.backend=sim_human",
                                 "reward.human_scale=1-5", "reward.shadow=[sim_truth, sim_truth_noisy]",
                                 f"reward.noisy_false_positive_rate={FALSE_POSITIVE_RATE}",
                                 f"reward.noisy_score_error_rate={SCORE_ERROR_RATE}"])
    env = build_env(cfg)
    trainer = DSRLTrainer(cfg, env=env, policy=CoinFlipExpert(env))
    try:
        trainer.run()
    finally:
        trainer.close()
    return out


def test_a_human_oracle_run_records_every_label_and_the_audit_recovers_the_injected_noise(oracle_run, tmp_path):
    run = RecordedRun(oracle_run)
    assert run.run_meta["meta"]["reward_backend"] == "sim_human" and run.run_meta["meta"]["shadow"] == ["sim_truth", "sim_truth_noisy"]
    records = run.records
    assert len(records) >= 50 and all(r["kind"] == "warm_start" and not r["partial"] for r in records)
    assert all(set(r["labels"]) == {"human", "sim_truth", "sim_truth_noisy"} for r in records)
    tables = [run.table(r["episode_index"]).to_pandas() for r in records]
    finals = [t["truth.progress"].iloc[-1] for t in tables]
    human = [progress_score(TaskStatus(progress=p, success=bool(t["truth.success"].iloc[-1]), stage=0, stage_success=(),
                                       stage_progress=0.0)) for p, t in zip(finals, tables)]
    assert [r["labels"]["human"]["score"] for r in records] == human  # the person scored what the simulator showed
    for r, t in zip(records, tables):  # the person's success key, on the step that succeeded (no column: no key)
        keys = t["human_key"].dropna().tolist() if "human_key" in t else []
        assert keys == (["SUCCESS"] if r["success"] else [])
        assert not r["success"] or t["human_key"].iloc[-2] == "SUCCESS"
    result = audit_run(oracle_run, resamples=300)
    assert result["labelled_episodes"] == len(records) and set(result["backends"]) == {"sim_truth", "sim_truth_noisy"}
    truth, noisy = result["backends"]["sim_truth"], result["backends"]["sim_truth_noisy"]
    negatives, positives = truth["false_positive_rate"]["n"], truth["false_negative_rate"]["n"]
    assert negatives >= 20 and positives >= 12
    assert truth["false_positive_rate"]["count"] == 0 and truth["false_negative_rate"]["count"] == 0
    # The simulator's 1 + 4 progress differs from the person's whole-number score only by their rounding.
    assert truth["mae"]["value"] == pytest.approx(np.mean([abs(1 + 4 * p - h) for p, h in zip(finals, human)]))
    assert truth["mae"]["value"] <= 0.5
    lo, hi = noisy["false_positive_rate"]["ci95"]
    assert lo <= FALSE_POSITIVE_RATE <= hi
    flipped = sum(r["labels"]["sim_truth_noisy"]["raw"]["success_flipped"] for r in records if not r["labels"]["human"]["success"])
    assert noisy["false_positive_rate"]["count"] == flipped and noisy["false_positive_rate"]["ci95"] == list(wilson_interval(flipped, negatives))
    lo, hi = noisy["mae"]["ci95"]
    assert lo <= 2 * SCORE_ERROR_RATE <= hi and noisy["false_negative_rate"]["count"] == 0
    assert main(["audit", str(oracle_run), "--out", str(tmp_path), "--resamples", "200"]) == 0


# ---- seeding ---------------------------------------------------------------------------------------
class FittingExpert(CoinFlipExpert):
    """CoinFlipExpert that fits noise to recorded chunks (as DiffusionPolicy.fit_noise does): the noise is the
    chunk's row number in every dimension, its error 0.01 on even rows and 0.5 (past seeding.FIT_TOLERANCE) on odd."""

    def __init__(self, env):
        super().__init__(env)
        self.fits = []

    def fit_noise(self, obs, chunks, magnitude):
        self.fits.append((len(chunks), magnitude))
        rows = np.arange(len(chunks), dtype=np.float32)
        return np.broadcast_to(rows[:, None, None], chunks.shape).copy(), np.where(rows % 2 == 0, 0.01, 0.5).astype(np.float32)


def record_demos(folder, episodes=2):
    """Scripted drawer episodes recorded without noise or labels, as a teleoperated or scripted recording has."""
    env = make_sim_env(task="drawer", cameras=(), seed=0, max_steps=25)
    with RunRecorder(folder, [], env.control_hz) as rec:
        for seed in range(episodes):
            record_episode(env, scripted_expert(env, 0.1, seed=seed), rec, kind="demo", seed=seed)
    return folder


class Broken:
    """A shadow backend whose model server is down."""

    name, offers = "robometer", frozenset({"episode_score"})

    def score_episode(self, clip):
        raise ConnectionError("model server down")


def test_recorded_runs_seed_the_buffer_before_the_warm_start(oracle_run, tmp_path, monkeypatch, caplog):
    demos = record_demos(tmp_path / "demos")
    real_build = build_reward_backend
    monkeypatch.setattr("dsrl_real.train.trainer.build_reward_backend",
                        lambda cfg, name=None: Broken() if name == "robometer" else real_build(cfg, name=name))
    out = tmp_path / "seeded"
    cfg = load_config(overrides=[*ORACLE, f"train.out_dir={out}", "train.env_steps=40", "reward.shadow=[robometer]",
                                 f"train.seed_runs=[{oracle_run}, {demos}]", "reward.end_on=detector"])
    env = build_env(cfg)
    trainer = DSRLTrainer(cfg, env=env, policy=CoinFlipExpert(env))
    seen = {}
    warm_noise = trainer._warm_noise

    def first_warm_noise(features):
        if not seen:
            seen["transitions"], seen["episodes"] = len(trainer.buffer), trainer.buffer.num_episodes_started
            seen["batch"] = trainer.buffer.sample(4096, np.random.default_rng(0))
        return warm_noise(features)

    trainer._warm_noise = first_warm_noise
    with caplog.at_level(logging.WARNING, logger="dsrl_real.train.trainer"):
        try:
            trainer.run()
        finally:
            trainer.close()
    expected = [RecordedRun(oracle_run).episode(r["episode_index"]) for r in RecordedRun(oracle_run).records]
    expected += [RecordedRun(demos).episode(i) for i in range(2)]
    assert seen["episodes"] == len(expected) and seen["transitions"] == sum(len(e) for e in expected)
    # Slot by slot (episodes of T steps fill T + 1 slots, in order): the recorded actions, noise where it was
    # recorded, and rewards re-shaped from the sim_truth labels (the demos have none: their recorded rewards).
    slots = {}
    for e in expected:
        label = e.labels.get("sim_truth")
        rewards = e.rewards  # the demos: the environment's reward per step
        if label is not None:  # the oracle run: the sparse reward, the label's, on the last step
            rewards = np.zeros(len(e), np.float32)
            rewards[-1] = label["reward"]
        for t in range(len(e)):
            slots[len(slots)] = (e.actions[t], None if e.noise is None else e.noise[t], rewards[t])
        slots[len(slots)] = None  # the final observation's slot starts no transition
    batch = seen["batch"]
    for i, slot in enumerate(batch["index"]):
        action, noise, reward = slots[int(slot)]
        assert batch["actions"][i].tobytes() == f32_bytes(action[None])
        assert batch["has_noise"][i] == (noise is not None) and batch["reward"][i] == reward
        if noise is not None:
            assert batch["noise"][i].tobytes() == f32_bytes(noise.reshape(1, 7))
    assert batch["has_noise"].any() and not batch["has_noise"].all() and batch["reward"].max() == 1.0
    # The broken shadow backend: an invalid label on every episode, one log line, and the run went on.
    records = read_jsonl(out / "meta" / "dsrl_episodes.jsonl")
    assert len(records) == trainer.episodes >= 2
    assert all(r["labels"]["robometer"] == {"score": None, "success": None, "reward": None, "valid": False,
                                            "error": "ConnectionError: model server down"} for r in records)
    assert all(r["labels"]["sim_truth"]["valid"] for r in records)
    # The success detector's prefix scores are in the rows: row t's is the progress of observation t + 1
    # (the step that ended the episode, here the time limit, is not scored).
    rows = recorded_rows(out, 0)
    assert records[0]["truncated"]
    np.testing.assert_allclose(rows["progress.sim_truth"].iloc[:-2], rows["truth.progress"].iloc[1:-1], rtol=1e-6)
    assert rows["success_prob.sim_truth"].iloc[:-2].tolist() == rows["truth.success"].iloc[1:-1].astype(float).tolist()
    assert rows["progress.sim_truth"].iloc[-2:].isna().all()
    assert [m.getMessage() for m in caplog.records] == [
        "Shadow backend robometer failed (ConnectionError: model server down); its labels are recorded as invalid and the run goes on."]


def test_shadow_backends_label_episodes_without_touching_rewards_or_training(tmp_path):
    def train(name, *overrides):
        cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path / name}", "train.env_steps=48", *overrides])
        trainer = DSRLTrainer(cfg)
        try:
            trainer.run()
        finally:
            trainer.close()
        return trainer

    plain = train("plain")
    shadowed = train("shadowed", "reward.shadow=[sim_truth_noisy]", "reward.noisy_false_positive_rate=1.0")
    n = len(plain.buffer)
    assert n == len(shadowed.buffer) and plain.agent.step == shadowed.agent.step > 0
    rng = np.random.default_rng(0)
    mine, theirs = plain.buffer.sample(n, rng), shadowed.buffer.sample(n, np.random.default_rng(0))
    for key in ("reward", "terminated", "noise", "features"):
        np.testing.assert_array_equal(mine[key], theirs[key])
    for (path, a), (_, b) in zip(jax_leaves(plain.agent.state_dict()["state"]), jax_leaves(shadowed.agent.state_dict()["state"])):
        np.testing.assert_array_equal(a, b, err_msg=path)
    labels = [r["labels"] for r in read_jsonl(tmp_path / "shadowed" / "meta" / "dsrl_episodes.jsonl") if r["kind"] != "eval"]
    assert labels and all(lab["sim_truth_noisy"]["success"] is True for lab in labels)  # every failure called a success
    assert not any(lab["sim_truth"]["success"] for lab in labels)  # ...while the rewards came from the truth


def jax_leaves(tree):
    import jax

    return [(jax.tree_util.keystr(path), np.asarray(leaf)) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


@pytest.mark.parametrize("overrides, fitted", [((), True), (("train.seed_noise=none",), False),
                                               (("agent.algorithm=dsrl_na",), False)])
def test_dsrl_sac_gets_fitted_noise_for_seeded_steps_recorded_without_it(tmp_path, overrides, fitted):
    demos = record_demos(tmp_path / "demos")
    out = tmp_path / "seeded"
    cfg = load_config(overrides=[*ORACLE, f"train.out_dir={out}", "train.env_steps=0", f"train.seed_runs=[{demos}]", *overrides])
    env = build_env(cfg)
    policy = FittingExpert(env)
    trainer = DSRLTrainer(cfg, env=env, policy=policy)
    try:
        trainer.run()
    finally:
        trainer.close()
    steps = sum(len(RecordedRun(demos).episode(i)) for i in range(2))  # one action per chunk step
    seeded = trainer.buffer.sample(4096, np.random.default_rng(0))
    (record,) = [r for r in read_jsonl(out / "metrics.jsonl") if r["kind"] == "seed"]
    assert record["transitions"] == steps
    if not fitted:  # only DSRL-SAC's critic reads the noise taken; none: the rows stay masked for it
        assert policy.fits == [] and not seeded["has_noise"].any() and "noise_fitted" not in record
        return
    assert policy.fits == [(steps, 1.5)]  # every chunk step of both episodes in one call, in the actor's box
    first = len(RecordedRun(demos).episode(0))
    for slot, has_noise, noise in zip(seeded["index"], seeded["has_noise"], seeded["noise"]):
        row = int(slot) if slot < first else int(slot) - 1  # the first episode's final observation fills slot `first`
        assert has_noise == (row % 2 == 0)
        if has_noise:
            assert np.all(noise == row)
    assert record["noise_fitted"] == (steps + 1) // 2 and record["noise_unfitted"] == steps // 2
    assert record["noise_fit_error"] == 0.01


def test_shadow_and_seed_settings_are_checked_in_one_sentence(tmp_path):
    def shadows(*overrides, **reward):  # reward: values set past load_config's own checks, for the guards behind them
        cfg = load_config(overrides=[*STATE, *overrides])
        for key, value in reward.items():
            setattr(cfg.reward, key, value)
        return ShadowScorers.from_config(cfg, SimTruthBackend(), build_reward_backend)

    with pytest.raises(ConfigError, match=r"^Unknown reward.shadow backend\(s\) gpt; choose from: sim_truth, roboreward"):
        shadows(shadow=["gpt"])
    with pytest.raises(ConfigError, match=r"^reward.shadow would label every episode twice as sim_truth; name each backend once"):
        shadows("reward.shadow=[sim_truth]")
    with pytest.raises(ConfigError, match=r"^reward.shadow labels go into the recording; set train.record=true"):
        shadows("reward.shadow=[sim_truth_noisy]", "train.record=false")
    with pytest.raises(ConfigError, match=r"^Bad reward.noisy_\* setting: reward.noisy_score_error_rate must lie in \[0, 1\], got 1.5"):
        shadows("reward.shadow=[sim_truth_noisy]", noisy_score_error_rate=1.5)
    noisy = shadows("reward.shadow=[sim_truth_noisy]", "reward.noisy_false_positive_rate=0.4")
    assert noisy.names == ["sim_truth_noisy"] and noisy.backends[0].false_positive_rate == 0.4
    noisy.close()
    trainer = DSRLTrainer(load_config(overrides=[*FAST, f"train.out_dir={tmp_path / 'run'}", f"train.seed_runs=[{tmp_path}]"]))
    with pytest.raises(ConfigError, match=r"^train.seed_runs entry '.*': '.*' holds no recorded episodes"):
        trainer.run()
    trainer.close()


# ---- how runs end -----------------------------------------------------------------------------------
def test_ctrl_c_mid_evaluation_keeps_the_finished_episode_and_seals_the_trial_as_partial(tmp_path):
    out = tmp_path / "run"
    trainer = DSRLTrainer(load_config(overrides=[*FAST, f"train.out_dir={out}", "train.env_steps=36", "train.eval_episodes=1",
                                                 "train.eval_every_steps=12"]))
    step, calls = trainer.env.step, []

    def step_then_ctrl_c(action):  # 12 steps of the first evaluation, 12 of warm-start episode 1, then 4 of the next evaluation
        calls.append(1)
        if len(calls) == 29:
            raise KeyboardInterrupt
        return step(action)

    trainer.env.step = step_then_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    trainer.close()
    assert trainer.buffer.num_episodes_started == 1 and (out / "LATEST").read_text() == "episode_000001"
    assert [m["episode"] for m in read_jsonl(out / "metrics.jsonl") if m["kind"] == "episode"] == [1]
    records = read_jsonl(out / "meta" / "dsrl_episodes.jsonl")
    assert [(r["kind"], r["partial"], r["length"]) for r in records] == [("eval", False, 13), ("warm_start", False, 13),
                                                                          ("eval", True, 4)]
    assert records[1]["labels"]["sim_truth"]["valid"] and records[2]["interruption"] == "KeyboardInterrupt"
    with RunRecorder(out, [], trainer.env.control_hz):  # the run released its folder
        pass


class HeldScore:
    """The simulator's truth, scored on the worker thread only once `release` is set."""

    name = "sim_truth"

    def __init__(self):
        self.inner, self.release = SimTruthBackend(), threading.Event()
        self.offers = self.inner.offers

    def score_episode(self, clip):
        assert self.release.wait(30)
        return self.inner.score_episode(clip)

    def score_prefix(self, clip):
        return self.inner.score_prefix(clip)


def test_an_emergency_stop_during_the_reset_absorbs_the_last_episode_once(tmp_path):
    out = tmp_path / "run"
    backend = HeldScore()
    cfg = load_config(overrides=[*FAST, f"train.out_dir={out}", "train.env_steps=1000", "train.eval_episodes=0",
                                 "reward.scoring=background", "train.record=false"])
    trainer = DSRLTrainer(cfg, reward_backend=backend)
    reset, busy = trainer.env.reset, []

    def reset_then_stop(**kwargs):
        if trainer.episodes == 1:  # the learner is waiting for episode 1's score
            busy.append(not trainer.learner.join(0))
            backend.release.set()
            raise EmergencyStop("stop pressed")
        return reset(**kwargs)

    trainer.env.reset = reset_then_stop
    with pytest.raises(EmergencyStop):
        trainer.run()
    trainer.close()
    assert busy == [True] and trainer.learner.join(0)  # busy during the reset, done once the stop came through
    assert trainer.buffer.num_episodes_started == 1 and len(trainer.buffer) == 3
    assert json.loads((out / "checkpoints" / "episode_000001" / "counters.json").read_text())["episodes"] == 1
    assert [m["episode"] for m in read_jsonl(out / "metrics.jsonl") if m["kind"] == "episode"] == [1]
    assert trainer.recorder is None and not (out / "meta").exists()  # train.record=false


class Keys:
    """A human oracle whose keys come from a script, one poll each."""

    name, offers = "human", frozenset({"episode_score", "success"})

    def __init__(self, keys):
        self.keys = list(keys)

    def start_episode(self, instruction):
        pass

    def poll(self):
        return self.keys.pop(0) if self.keys else None

    def score_episode(self, clip):
        raise AssertionError("an emergency stop leaves nothing to label")

    def score_prefix(self, clip):
        raise NotImplementedError


def test_an_emergency_stop_key_is_the_last_recorded_step_of_a_partial_episode(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(overrides=[*FAST, f"train.out_dir={out}", "train.env_steps=1000", "train.eval_episodes=0"])
    trainer = DSRLTrainer(cfg, reward_backend=Keys([None, HumanEvent.PAUSE, HumanEvent.RESUME, None, HumanEvent.ESTOP]))
    with pytest.raises(EmergencyStop):
        trainer.run()
    trainer.close()
    (record,) = read_jsonl(out / "meta" / "dsrl_episodes.jsonl")
    assert (record["kind"], record["partial"], record["interruption"], record["length"]) == ("warm_start", True, "EmergencyStop", 4)
    rows = recorded_rows(out, 0)
    assert rows["human_key"].fillna("").tolist() == ["", "PAUSE,RESUME", "", "ESTOP"]
    assert rows["noise"].notna().tolist() == [True, False, False, False]


def test_the_learner_is_one_thread_for_the_whole_run_and_join_waits_for_its_cycle():
    learner, release, order = Learner(), threading.Event(), []
    learner.submit(lambda: (release.wait(30), order.append("first")))
    assert not learner.join(0)  # busy
    with pytest.raises(RuntimeError, match="still busy"):
        learner.submit(lambda: None)
    release.set()
    assert learner.join(30) and order == ["first"]
    thread = learner._thread
    learner.submit(lambda: order.append("second") or 7)
    assert learner.join(30) and learner.result().value == 7 and learner._thread is thread  # the same worker
    learner.submit(lambda: 1 / 0)
    assert learner.join(30) and isinstance(learner.result().error, ZeroDivisionError)  # surfaced by the trainer
    learner.stop()
    assert not thread.is_alive() and order == ["first", "second"]


def test_seeding_refuses_a_run_recorded_with_other_cameras(oracle_run, tmp_path):
    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path / 'run'}", f"train.seed_runs=[{oracle_run}]",
                                 "cameras=[{name: wrist, view: wrist, width: 16, height: 16}]"])
    trainer = DSRLTrainer(cfg)
    with pytest.raises(ConfigError, match=r"recorded the cameras \[\], not \['wrist'\]; seed from a run with this run's cameras"):
        trainer.run()
    trainer.close()
