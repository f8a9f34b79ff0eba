"""The reward runtime: success detection, stage tracking, background scoring, the human oracle path,
the wiring into the training loop, and `dsrl-real score`."""

import json
import threading

import numpy as np
import pytest
from conftest import STATE

from dsrl_real.cli import main
from dsrl_real.config import ConfigError, load_config
from dsrl_real.data import replay_files
from dsrl_real.envs.make import build_env
from dsrl_real.envs.safety import EmergencyStop
from dsrl_real.rewards.base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeClip, EpisodeScore, ProgressScore
from dsrl_real.rewards.detection import StageChange, StageTracker, SuccessDetector
from dsrl_real.rewards.keyboard import HumanEvent
from dsrl_real.rewards.registry import build_reward_backend
from dsrl_real.rewards.scoring import (
    BackgroundScorer,
    PrefixRequest,
    RewardRuntime,
    resolve_end_on,
    score_episode,
)
from dsrl_real.sim.expert import ScriptedExpert
from dsrl_real.train.episode import run_chunk_episode
from dsrl_real.train.features import FeatureFn
from dsrl_real.train.trainer import DSRLTrainer

EXTERNAL = "policy.external=dsrl_real.policies.examples:scaled_noise_policy"
FAST = [*STATE, "train.wandb=disabled", "train.eval_episodes=1", "train.eval_every_steps=100000",
        "train.warm_start_episodes=10", "agent.hidden_dim=32", "agent.batch_size=16", "agent.utd=2"]


class ExpertPolicy:
    """The scripted expert as a base policy, one action per chunk (it acts on the simulator's newest state)."""

    chunk_size, action_dim, noise_shape = 1, 7, (1, 7)

    def __init__(self, env, noise: float = 0.0, seed: int = 0):
        self.expert = ScriptedExpert(env.scene.sim, noise=noise, seed=seed)

    def sample(self, obs, noise):
        return np.repeat(self.expert.act()[None, None], len(noise), axis=0)

    def embed(self, obs):
        return np.zeros((len(obs["proprio"]), 0), np.float32)


class Recording:
    """Passes calls to a backend and keeps every clip it was shown."""

    def __init__(self, inner):
        self.inner, self.name, self.offers = inner, inner.name, inner.offers
        self.prefixes, self.episodes = [], []

    def score_prefix(self, clip):
        self.prefixes.append(clip)
        return self.inner.score_prefix(clip)

    def score_episode(self, clip):
        self.episodes.append(clip)
        return self.inner.score_episode(clip)


class Scripted:
    """Success probabilities and keys from a script, one entry per call."""

    name, offers = "scripted", frozenset({EPISODE_SCORE, PROGRESS, SUCCESS})

    def __init__(self, probs=(), keys=()):
        self.probs, self.keys = list(probs), list(keys)

    def score_prefix(self, clip):
        return ProgressScore(np.zeros(max(len(clip.truth), 1), np.float32), self.probs.pop(0) if self.probs else 0.0)

    def score_episode(self, clip):
        return EpisodeScore(reward=float(clip.truth[-1].success), success=clip.truth[-1].success)


class ScriptedKeys:
    """A human oracle whose keys come from a script (one poll each); labels every episode a success."""

    name, offers = "human", frozenset({EPISODE_SCORE, SUCCESS})

    def __init__(self, keys):
        self.keys, self.instructions = list(keys), []

    def start_episode(self, instruction):
        self.instructions.append(instruction)

    def poll(self):
        return self.keys.pop(0) if self.keys else None

    def score_episode(self, clip):
        return EpisodeScore(reward=1.0, success=True)

    def score_prefix(self, clip):
        raise NotImplementedError


def zero_noise(features):
    return np.zeros((1, 7), np.float32)


def sim_episode(cfg, backend=None, policy=None, seed=0):
    env = build_env(cfg)
    runtime = RewardRuntime(cfg, env.task, env.control_hz, backend or build_reward_backend(cfg))
    env.terminate_on_success = not runtime.ends_episodes
    policy = policy or ExpertPolicy(env)
    obs, info = env.reset(seed=seed)
    ep = run_chunk_episode(env, policy, FeatureFn(policy, env, "policy_embedding"), zero_noise, obs, info, runtime.monitor)
    return ep, env, runtime


# ---- success detector ---------------------------------------------------------------------------------
def test_detector_needs_a_majority_of_the_window_at_or_above_the_threshold():
    detector = SuccessDetector(threshold=0.6, window=3)
    assert [detector.update(p) for p in (0.7, 0.2, 0.6)] == [False, False, True]  # 2 of 3 reach 0.6
    assert detector.update(0.0) and detector.detected  # stays detected until reset
    detector.reset()
    assert not any(detector.update(p) for p in (0.59, 0.59, 0.59, 0.59))
    detector.reset()
    # Isolated spikes, as a reward model gives on a failed attempt, never make a majority of 3.
    assert not any(detector.update(p) for p in (0.9, 0.1, 0.1, 0.95, 0.2, 0.3, 0.99, 0.0))
    single = SuccessDetector(threshold=0.6, window=1)
    assert [single.update(p) for p in (0.1, 0.9)] == [False, True]
    with pytest.raises(ValueError, match="threshold must be in"):
        SuccessDetector(threshold=1.5)
    with pytest.raises(ValueError, match="window must be at least 1"):
        SuccessDetector(window=0)


# ---- stage tracker ------------------------------------------------------------------------------------
def test_stage_tracker_advances_on_detected_success_and_exposes_the_current_stages_frames():
    tracker = StageTracker(("pick", "place"), SuccessDetector(0.6, window=1))
    assert (tracker.stage, tracker.instruction, tracker.visible(4)) == (0, "pick", slice(0, 5))
    assert tracker.report(0, 0.3, 4) is None
    assert tracker.report(0, 0.8, 5) == StageChange(stage=0, frame=5, done=False)
    assert (tracker.stage, tracker.instruction, tracker.stage_start, tracker.visible(9)) == (1, "place", 5, slice(5, 10))
    assert tracker.report(0, 0.9, 7) is None  # a late score for the finished stage is ignored
    assert tracker.report(1, 0.9, 4) is None  # as is one about frames before the stage began
    assert tracker.stage == 1 and not tracker.done
    assert tracker.report(1, 0.9, 12) == StageChange(stage=1, frame=12, done=True) and tracker.done
    assert tracker.segments(14) == [(0, "pick", 0, 5), (1, "place", 5, 14)]
    tracker.reset()
    assert (tracker.stage, tracker.starts, tracker.done) == (0, [0], False)


def test_stage_step_limits_count_from_the_stages_start():
    tracker = StageTracker(("pick", "place"), SuccessDetector(0.6, window=1), step_limits=(3, 4))
    assert not tracker.out_of_steps(2) and tracker.out_of_steps(3)
    tracker.report(0, 1.0, 2)
    assert not tracker.out_of_steps(5) and tracker.out_of_steps(6)
    with pytest.raises(ValueError, match="one step limit per stage"):
        StageTracker(("pick", "place"), step_limits=(3,))


# ---- background scorer ---------------------------------------------------------------------------------
class Gated:
    """Blocks in every call until the test opens the gate; records what it scored, in order."""

    name, offers = "gated", frozenset({EPISODE_SCORE, PROGRESS, SUCCESS})

    def __init__(self):
        self.started, self.gate, self.calls = threading.Event(), threading.Event(), []

    def score_prefix(self, clip):
        self.calls.append(("prefix", len(clip.truth)))
        self.started.set()
        assert self.gate.wait(30)
        return ProgressScore(np.zeros(len(clip.truth), np.float32), 0.0)

    def score_episode(self, clip):
        self.calls.append(("episode", len(clip.truth)))
        return EpisodeScore(reward=1.0, success=True)


def request(last, episode=1, truth=None):
    return PrefixRequest(episode=episode, stage=0, instruction="pick", first=0, last=last, fps=5.0, frames={},
                         truth=truth if truth is not None else list(range(20)))


def test_background_scorer_never_waits_and_scores_only_the_newest_prefix():
    backend = Gated()
    scorer = BackgroundScorer(backend)
    scorer.request_prefix(request(1))
    assert backend.started.wait(30)  # the worker is now stuck inside the backend
    for last in (2, 3, 4):
        scorer.request_prefix(request(last))  # each returns although the backend is blocked
    assert scorer.poll() == []  # nothing finished yet, and polling does not wait
    future = scorer.submit(lambda: "episode scored")
    assert not future.done()
    backend.gate.set()
    assert future.result(timeout=30) == "episode scored" and scorer.drain(timeout=30)
    # Request 1 was running; 2 and 3 were replaced before the worker got to them; the episode job goes first.
    assert backend.calls == [("prefix", 2), ("prefix", 5)]
    assert [r.request.last for r in scorer.poll()] == [1, 4] and scorer.dropped == 2
    scorer.close()


def test_cancelled_prefixes_are_forgotten_and_whole_episode_jobs_are_never_dropped():
    backend = Gated()
    scorer = BackgroundScorer(backend)
    scorer.request_prefix(request(1))
    assert backend.started.wait(30)
    scorer.request_prefix(request(2))
    jobs = [scorer.submit(score_episode, backend, {}, list(range(n)), "pick", 5.0, "sparse", [0, n - 1], [(0, "pick", 0, n - 1)], 1)
            for n in (3, 4)]
    scorer.cancel_prefixes()  # the episode ended: request 2 will not be scored
    backend.gate.set()
    assert [job.result(timeout=30).score.reward for job in jobs] == [1.0, 1.0]
    assert scorer.drain(timeout=30)
    assert backend.calls == [("prefix", 2), ("episode", 3), ("episode", 4)]
    scorer.close()


def test_inline_scorer_gives_the_same_results_at_once_and_backend_errors_reach_the_caller():
    scorer = BackgroundScorer(Scripted(probs=[0.25]), background=False)
    scorer.request_prefix(request(3))
    (result,) = scorer.poll()
    assert result.request.last == 3 and result.score.success_prob == 0.25 and result.error is None

    class Broken(Scripted):
        def score_prefix(self, clip):
            raise ConnectionError("The reward server at http://gpu:8000 is not reachable; start it or fix reward.server_url.")

    cfg = load_config(overrides=[*STATE, "reward.scoring=inline"])
    with pytest.raises(ConnectionError, match="not reachable"):
        sim_episode(cfg, backend=Broken())


# ---- the episode loop with the monitor -----------------------------------------------------------------
def test_the_backend_sees_only_the_frames_since_the_current_stage_began():
    cfg = load_config(overrides=[*STATE, "cameras=[{name: third_person, view: third_person, width: 16, height: 16}]", "reward.end_on=detector"])
    backend = Recording(build_reward_backend(cfg))
    ep, env, _ = sim_episode(cfg, backend)
    picked = next(t for t, s in enumerate(ep.truth) if s.stage_success[0])
    placed = next(t for t, s in enumerate(ep.truth) if s.success)
    # Majority of 3 with one score per step: success is confirmed by the next frame's score.
    assert ep.stage_starts == [0, picked + 1] and not env.terminate_on_success
    assert (ep.end_reason, ep.terminated, ep.truncated, ep.env_steps) == ("success", True, False, placed + 1)
    assert ep.success and ep.detected_success
    pick, place = env.task.stages
    stage0 = [c for c in backend.prefixes if c.instruction == pick]
    stage1 = [c for c in backend.prefixes if c.instruction == place]
    assert len(stage0) + len(stage1) == len(backend.prefixes) == ep.env_steps
    assert [len(c.truth) for c in stage0] == list(range(2, picked + 3)) and all(c.truth[0] is ep.truth[0] for c in stage0)
    start = picked + 1
    assert [len(c.truth) for c in stage1] == list(range(2, ep.env_steps - start + 2))
    assert all(c.truth[0] is ep.truth[start] for c in stage1)
    assert all(c.frames["third_person"].shape == (len(c.truth), 16, 16, 3) for c in backend.prefixes)
    np.testing.assert_array_equal(stage1[0].frames["third_person"][0], ep.frames["third_person"][start])


def test_dense_reward_from_stage_progress_sums_to_the_episodes_progress_gain():
    cfg = load_config(overrides=[*STATE, "reward.end_on=detector"])
    ep, env, runtime = sim_episode(cfg)
    segments = runtime.monitor.tracker.segments(ep.env_steps)
    scored = score_episode(runtime.backend, ep.frames, ep.truth, env.task.instruction, 5.0, "dense", ep.step_frames, segments, 2)
    assert len(scored.rewards) == len(ep.chunks) == ep.env_steps  # the expert's chunks are one step long
    assert scored.rewards.sum() == pytest.approx(1.0 - ep.truth[0].stage_progress / 2, abs=1e-5)
    assert scored.rewards[0] == pytest.approx((ep.truth[1].stage_progress - ep.truth[0].stage_progress) / 2, abs=1e-6)
    assert scored.score.success and scored.progress[-1] == pytest.approx(1.0)


def test_without_the_detector_the_environment_ends_episodes_and_dense_progress_covers_the_whole_task():
    cfg = load_config(overrides=[*STATE, "reward.end_on=env", "reward.form=dense"])
    ep, env, runtime = sim_episode(cfg)
    placed = next(t for t, s in enumerate(ep.truth) if s.success)
    assert env.terminate_on_success and (ep.end_reason, ep.env_steps, ep.stage_starts) == ("success", placed, [0])
    scored = runtime.score(ep.frames, ep.truth, ep.step_frames, ep.stage_starts).result()
    np.testing.assert_allclose(scored.progress, [s.progress for s in ep.truth])  # the simulator's overall progress
    assert scored.rewards.sum() == pytest.approx(1.0 - ep.truth[0].progress, abs=1e-5)


def test_isolated_success_spikes_never_end_a_failed_episode():
    cfg = load_config(overrides=[*STATE, "task.max_steps=12", "reward.scoring=inline"])
    spikes = [0.9, 0.1, 0.2] * 4  # a false positive every third prefix
    ep, _, _ = sim_episode(cfg, backend=Scripted(probs=spikes), policy=ScaledNoisePolicyOneStep())
    assert (ep.end_reason, ep.truncated, ep.detected_success, ep.env_steps) == ("time_limit", True, False, 12)
    # The same scores with a window of one (and the task as one stage) end the episode at the first spike.
    cfg = load_config(overrides=[*STATE, "task.max_steps=12", "reward.scoring=inline", "reward.success_window=1",
                                 "reward.track_stages=false"])
    ep, _, _ = sim_episode(cfg, backend=Scripted(probs=spikes), policy=ScaledNoisePolicyOneStep())
    assert (ep.end_reason, ep.terminated, ep.env_steps) == ("success", True, 1)
    assert not ep.success  # the simulator knows better: a false trigger


class ScaledNoisePolicyOneStep(ExpertPolicy):
    """Holds still: it never succeeds."""

    def __init__(self):
        pass

    def sample(self, obs, noise):
        return np.tile(np.array([0, 0, 0, 0, 0, 0, 1], np.float32), (len(noise), 1, 1))


def test_a_stage_that_runs_out_of_steps_ends_the_episode_as_a_failure():
    cfg = load_config(overrides=[*STATE, "reward.end_on=detector", "reward.stage_max_steps=[5, 40]"])
    ep, _, _ = sim_episode(cfg)
    assert (ep.end_reason, ep.truncated, ep.terminated, ep.env_steps, ep.stage_starts) == ("stage_time_limit", True, False, 5, [0])


def test_reward_settings_that_cannot_work_are_one_sentence():
    cfg = load_config(overrides=[*STATE, "reward.end_on=detector", "reward.stage_max_steps=[5]"])
    with pytest.raises(ConfigError, match=r"Give one step limit per stage \(2: "):
        sim_episode(cfg)
    only_episodes = Scripted()
    only_episodes.offers = frozenset({EPISODE_SCORE})
    assert resolve_end_on("auto", only_episodes) == "time_limit"
    with pytest.raises(ConfigError, match="reward.end_on=detector needs success scores during the episode"):
        resolve_end_on("detector", only_episodes)
    with pytest.raises(ConfigError, match="Unknown reward.end_on 'never'"):
        resolve_end_on("never", only_episodes)
    unknown = load_config()
    unknown.reward.backend = "gpt"  # past load_config's own check: the registry refuses it too
    with pytest.raises(ConfigError, match="Unknown reward.backend 'gpt'; choose one of: sim_truth, roboreward"):
        build_reward_backend(unknown)
    with pytest.raises(ConfigError, match="reward.backend=roboreward needs reward.model"):
        build_reward_backend(load_config(overrides=["reward.backend=roboreward"]))
    with pytest.raises(ConfigError, match=r"reward.camera 'top' is not one of the cameras \['third_person', 'wrist'\]"):
        cfg = load_config(overrides=["reward.camera=top"])
        RewardRuntime(cfg, build_env(cfg).task, 5.0, cameras=["third_person", "wrist"])


# ---- human oracle --------------------------------------------------------------------------------------
def test_pause_holds_the_robot_and_the_emergency_stop_ends_the_episode_and_the_run():
    cfg = load_config(overrides=[*STATE])
    env = build_env(cfg)
    stops = []
    env.robot.stop = lambda: stops.append(env.steps)
    keys = ScriptedKeys([None, HumanEvent.PAUSE, None, HumanEvent.RESUME, None, HumanEvent.ESTOP])
    runtime = RewardRuntime(cfg, env.task, env.control_hz, keys)
    env.terminate_on_success = not runtime.ends_episodes
    policy = ExpertPolicy(env)
    obs, info = env.reset(seed=0)
    with pytest.raises(EmergencyStop, match=r"^Emergency stop pressed: the robot is holding its position .* --resume\.$"):
        run_chunk_episode(env, policy, FeatureFn(policy, env, "policy_embedding"), zero_noise, obs, info, runtime.monitor)
    assert stops == [2, 4] and env.steps == 4  # held at the pause, stopped at the e-stop, nothing sent after it
    assert keys.instructions == [env.task.instruction]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(7, np.float32))


@pytest.mark.parametrize("key, reason, success", [(HumanEvent.SUCCESS, "human_success", True),
                                                  (HumanEvent.FAILURE, "human_failure", False)])
def test_a_human_key_ends_the_episode_with_its_label(key, reason, success):
    cfg = load_config(overrides=[*STATE])
    ep, _, _ = sim_episode(cfg, backend=ScriptedKeys([None, None, key]), policy=ScaledNoisePolicyOneStep())
    assert (ep.end_reason, ep.env_steps, ep.terminated, ep.truncated) == (reason, 3, success, not success)


def test_emergency_stop_in_training_keeps_every_finished_episode(tmp_path, monkeypatch, capsys):
    keys = ScriptedKeys([None, None, HumanEvent.SUCCESS] + [None] * 3 + [HumanEvent.ESTOP])
    monkeypatch.setattr("dsrl_real.train.trainer.build_reward_backend", lambda cfg: keys)
    out = tmp_path / "run"
    code = main(["train", *FAST, EXTERNAL, "train.eval_episodes=0", f"train.out_dir={out}", "train.env_steps=1000"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 3 and err.startswith("dsrl-real: Emergency stop pressed:")
    folder = out / "checkpoints" / (out / "LATEST").read_text()
    buffer = replay_files.load(folder / "replay")
    assert json.loads((folder / "counters.json").read_text())["episodes"] == buffer.num_episodes_started == 1
    batch = buffer.sample(8, np.random.default_rng(0))
    assert batch["terminated"].any() and batch["reward"].max() == 1.0  # the human's success, ended at step 3


def test_simulated_human_labels_episodes_through_the_real_keyboard_oracle(tmp_path):
    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path / 'expert'}", "reward.backend=sim_human", "train.env_steps=20"])
    env = build_env(cfg)
    trainer = DSRLTrainer(cfg, env=env, policy=ExpertPolicy(env))
    try:
        trainer.run()
    finally:
        trainer.close()
    episodes = [r for r in map(json.loads, (tmp_path / "expert" / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "episode"]
    assert [(r["end"], r["reward"], r["success"]) for r in episodes] == [("human_success", 1.0, True)] * 2
    # A policy that never succeeds: the time limit ends the episode and the person answers the prompt with f.
    cfg = load_config(overrides=[*STATE, "reward.backend=sim_human", "task.max_steps=8"])
    ep, _, runtime = sim_episode(cfg, policy=ScaledNoisePolicyOneStep())
    scored = runtime.score(ep.frames, ep.truth, ep.step_frames, ep.stage_starts).result()
    runtime.close()
    assert (ep.end_reason, ep.truncated, scored.score.reward, scored.score.raw["source"]) == ("time_limit", True, 0.0, "prompt")


# ---- the training loop ---------------------------------------------------------------------------------
def test_dsrl_run_on_the_two_stage_task_reaches_the_second_stage_and_ends_on_detected_success(tmp_path):
    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path}", "train.env_steps=24", "train.buffer_capacity=200", "reward.end_on=detector"])
    env = build_env(cfg)
    backend = Recording(build_reward_backend(cfg))
    trainer = DSRLTrainer(cfg, env=env, policy=ExpertPolicy(env), reward_backend=backend)
    result = trainer.run()
    assert not env.terminate_on_success  # the detector, not the simulator, ends episodes
    episodes = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "episode"]
    assert len(episodes) == result["episodes"] == 2
    assert all((r["end"], r["stage"], r["detected_success"], r["reward"]) == ("success", 1, True, 1.0) for r in episodes)
    assert {c.instruction for c in backend.prefixes} == set(env.task.stages)
    assert [c.instruction for c in backend.episodes] == [env.task.instruction] * 2  # whole episodes, whole instruction
    batch = trainer.buffer.sample(256, np.random.default_rng(0))
    last = batch["terminated"] | batch["truncated"]
    assert batch["terminated"][last].all() and np.all(batch["reward"][last] == 1.0) and np.all(batch["reward"][~last] == 0.0)
    assert result["final_success_rate"] == 1.0


# ---- dsrl-real score -----------------------------------------------------------------------------------
def test_score_reads_the_video_and_prints_the_backends_answer(tmp_path, monkeypatch, capsys):
    from dsrl_real.analysis.metrics import write_video

    frames = np.zeros((8, 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24, 0] = 200
    video = write_video(tmp_path / "episode.mp4", frames, fps=5.0)
    seen = []

    class FrameCounter:
        name, offers = "counter", frozenset({EPISODE_SCORE})

        def score_episode(self, clip: EpisodeClip):
            seen.append(clip)
            return EpisodeScore(reward=0.75, success=False, score=4, raw={"answer": "ANSWER: 4"})

    monkeypatch.setattr("dsrl_real.analysis.score.build_reward_backend", lambda cfg: FrameCounter())
    assert main(["score", "--backend", "roboreward", "--model", "x", "--video", str(video), "--task", "open the drawer"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: out[k] for k in ("reward", "success", "score", "valid", "raw", "frames", "fps")} == {
        "reward": 0.75, "success": False, "score": 4, "valid": True, "raw": {"answer": "ANSWER: 4"}, "frames": 8, "fps": 5.0}
    (clip,) = seen
    assert clip.frames["video"].shape == (8, 32, 32, 3) and clip.instruction == "open the drawer" and clip.fps == 5.0
    assert abs(int(clip.frames["video"][0, 16, 16, 0]) - 200) < 20  # the decoded picture, not a blank


def test_score_argument_errors_are_one_sentence(tmp_path, capsys):
    from dsrl_real.analysis.metrics import write_video

    video = write_video(tmp_path / "episode.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=5.0)
    cases = [
        (["--backend", "roboreward", "--video", str(tmp_path / "none.mp4")], "No video file"),
        (["--backend", "sim_truth", "--video", str(video)], "The sim_truth backend needs simulator ground truth"),
        (["--backend", "sim_reward_model", "--video", str(video)], "The sim_reward_model backend needs simulator ground truth"),
        (["--backend", "roboreward", "--video", str(video)], "reward.backend=roboreward needs reward.model"),
        (["--backend", "robometer", "--model", "m", "--server-url", "http://x", "--video", str(video)], "The robometer backend runs its model in this process"),
        (["--backend", "roboreward", "--model", "m", "--video", str(tmp_path)], "No video file"),
    ]
    (tmp_path / "notes.txt").write_text("not a video")
    cases.append((["--backend", "roboreward", "--model", "m", "--video", str(tmp_path / "notes.txt")], "Could not read"))
    for args, message in cases:
        assert main(["score", *args, "--task", "pick"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"dsrl-real: {message}") and "\n" not in err, err


# ---- with a tiny random Robometer (helper tests/tiny_qwen.py), through the real loading path -----------
@pytest.fixture(scope="module")
def tiny_robometer(tmp_path_factory):
    from dsrl_real.rewards import hf_loading

    hf_loading.import_transformers()
    from tiny_qwen import build_tiny_robometer, one_torch_thread

    with one_torch_thread():
        yield str(build_tiny_robometer(tmp_path_factory.mktemp("robometer")))


def test_score_a_video_with_a_tiny_robometer(tiny_robometer, tmp_path, capsys):
    from dsrl_real.analysis.metrics import write_video
    from dsrl_real.rewards.frames import subsample_indices

    frames = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    video = write_video(tmp_path / "episode.mp4", frames, fps=5.0)
    assert main(["score", "--backend", "robometer", "--model", tiny_robometer, "--video", str(video),
                 "--task", "pull the drawer out", "reward.device=cpu"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["backend"], out["valid"], out["frames"], out["fps"]) == ("robometer", True, 12, 5.0)
    assert out["raw"]["frame_indices"] == subsample_indices(12, 8).tolist()
    assert out["reward"] == pytest.approx(out["raw"]["progress"][-1]) and 0.0 <= out["reward"] <= 1.0


class ThreadLog:
    """Passes calls to a backend and notes the thread each ran on."""

    def __init__(self, inner):
        self.inner, self.name, self.offers, self.threads = inner, inner.name, inner.offers, []

    def score_prefix(self, clip):
        self.threads.append(threading.current_thread().name)
        return self.inner.score_prefix(clip)

    def score_episode(self, clip):
        self.threads.append(threading.current_thread().name)
        return self.inner.score_episode(clip)


def test_training_with_a_tiny_robometer_runs_the_model_only_off_the_control_loop(tiny_robometer, tmp_path):
    cfg = load_config(overrides=[*FAST, EXTERNAL, "cameras=[{name: third_person, view: third_person, width: 32, height: 32}]",
                                 "reward.backend=robometer", f"reward.model={tiny_robometer}", "reward.device=cpu",
                                 "reward.form=dense", "task.max_steps=8", "train.env_steps=16", "train.eval_episodes=0",
                                 f"train.out_dir={tmp_path}"])
    backend = ThreadLog(build_reward_backend(cfg))
    trainer = DSRLTrainer(cfg, reward_backend=backend)
    try:
        result = trainer.run()
    finally:
        trainer.close()
    assert trainer.rewards.scorer.background and (result["episodes"], len(trainer.buffer)) == (2, 4)  # 2 chunk steps each
    assert backend.threads and set(backend.threads) == {"reward-robometer"}  # never the control loop's thread
    episodes = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "episode"]
    assert len(episodes) == 2 and all(0.0 <= r["reward"] <= 1.0 for r in episodes)
