"""Benchmarks that print JSON. Numbers about speed live here, never in tests."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..envs.make import make_sim_env


def _steps_per_second(env, steps: int, seed: int = 0) -> float:
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def bench_sim(state_steps: int = 5000, camera_steps: int = 1000, realtime_steps: int = 60) -> dict:
    """Simulator speed, state-only and with two 128x128 cameras, and the real-time keeper's jitter."""
    state_env = make_sim_env(cameras=(), seed=0)
    camera_env = make_sim_env(cameras=("third_person", "wrist"), image_size=128, seed=0)
    realtime_env = make_sim_env(cameras=("third_person", "wrist"), image_size=128, seed=0, real_time=True)
    _steps_per_second(state_env, 200)  # warm-up
    result = {
        "steps_per_s_state": round(_steps_per_second(state_env, state_steps), 1),
        "steps_per_s_cameras": round(_steps_per_second(camera_env, camera_steps), 1),
    }
    realtime_env.reset(seed=0)
    for _ in range(realtime_steps):
        _, _, terminated, truncated, _ = realtime_env.step(realtime_env.action_space.sample())
        if terminated or truncated:
            realtime_env.reset()
    stats = realtime_env.rate.stats
    result.update(
        period_jitter_p99_ms=round(stats.jitter_ms(realtime_env.rate.period_s, 0.99), 3),
        period_jitter_max_ms=round(stats.jitter_ms(realtime_env.rate.period_s, 1.0), 3),
        control_hz=realtime_env.control_hz,
        periods=len(stats.periods_s),
        overruns=stats.overruns,
    )
    return result


CAPABLE_RECIPE = ["demos.episodes=200", "demos.expert_noise=0.1", "pretrain.steps=10000"]


def _pretrain_and_evaluate(overrides: list[str], work_dir: Path, episodes: int) -> dict:
    from ..config import load_config
    from ..policies.pipeline import base_success, pretrain_from_demos

    cfg = load_config(overrides=["cameras=[]", *overrides])
    policy, trainer, seconds = pretrain_from_demos(cfg, work_dir)
    return {
        **base_success(cfg, policy, episodes),
        "demos": cfg.demos.episodes, "expert_noise": cfg.demos.expert_noise, "pretrain_steps": cfg.pretrain.steps,
        "collect_and_pretrain_s": round(seconds, 1), "final_val_loss": round(trainer.history[-1]["val_loss"], 4),
    }


def bench_base_policy(episodes: int = 50) -> dict:
    """The default recipe should succeed sometimes (5-40%); more and cleaner demos should reach >= 80%."""
    with tempfile.TemporaryDirectory() as tmp:
        default = _pretrain_and_evaluate([], Path(tmp) / "default", episodes)
        capable = _pretrain_and_evaluate(CAPABLE_RECIPE, Path(tmp) / "capable", episodes)
    return {
        "base_success_rate": default["success_rate"],
        "capable_success_rate": capable["success_rate"],
        "episodes": episodes,
        "task": "monkey",
        "default_recipe": default,
        "capable_recipe": capable,
    }


def _latency_ms(policy, obs: dict, trials: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((trials + 10, 1, *policy.noise_shape)).astype(np.float32)
    times = []
    for i in range(trials + 10):
        start = time.perf_counter()
        policy.sample(obs, noise[i])
        times.append(time.perf_counter() - start)
    times = np.asarray(times[10:]) * 1e3  # the first calls compile
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def bench_policy_latency(trials: int = 300) -> dict:
    """Batch-1 action-chunk latency of the base policy (DSRL actor excluded), 8 DDIM steps."""
    import jax

    from ..config import PolicyConfig
    from ..policies.diffusion import DiffusionPolicy, Normalization, init_params

    env = make_sim_env(cameras=("third_person", "wrist"), image_size=128, seed=0)
    obs, _ = env.reset(seed=0)
    batch = {k: v[None] for k, v in obs.items()}
    low, high = env.action_space.low, env.action_space.high
    result: dict[str, float] = {}
    for name, image_keys in (("state", []), ("cameras", ["third_person_image", "wrist_image"])):
        cfg = PolicyConfig(image_keys=image_keys, inference_steps=8)
        norm = Normalization.fit({k: batch[k] for k in cfg.vector_keys}, np.stack([low, high]), low, high)
        shell = DiffusionPolicy(cfg, 7, norm, None)
        policy = DiffusionPolicy(cfg, 7, norm, init_params(cfg, 7, shell.prepare(batch), jax.random.PRNGKey(0)))
        p50, p99 = _latency_ms(policy, batch, trials)
        result[f"p50_ms_{name}"], result[f"p99_ms_{name}"] = round(p50, 3), round(p99, 3)
    result.update(inference_steps=8, image_size=128, cameras=2, trials=trials)
    return result


def _random_batches(rng, utd: int, batch: int, obs_dim: int, latent_dim: int) -> dict:
    return {
        "features": rng.normal(size=(utd, batch, obs_dim)).astype(np.float32),
        "next_features": rng.normal(size=(utd, batch, obs_dim)).astype(np.float32),
        "noise": rng.uniform(-1.5, 1.5, (utd, batch, latent_dim)).astype(np.float32),
        "has_noise": np.ones((utd, batch), bool),
        "reward": rng.random((utd, batch)).astype(np.float32),
        "terminated": rng.random((utd, batch)) < 0.05,
    }


# Both learners get the same networks: 3 hidden layers of `hidden` with tanh (DSRL's robomimic setting),
# 2 critics, batch 256, tau 0.005, automatic temperature with target entropy 0. Ours adds its LayerNorms.
THROUGHPUT_CRITICS, THROUGHPUT_LAYERS, THROUGHPUT_UTD = 2, 3, 20


def _dsrl_steps_per_s(hidden: int, batch: int, obs_dim: int, noise_shape: tuple[int, int], seconds: float) -> float:
    from ..agents.dsrl import DSRLAgent
    from ..config import AgentConfig

    cfg = AgentConfig(hidden_dim=hidden, num_layers=THROUGHPUT_LAYERS, num_critics=THROUGHPUT_CRITICS, activation="tanh",
                      utd=THROUGHPUT_UTD, batch_size=batch)
    agent = DSRLAgent(cfg, obs_dim, noise_shape)
    batches = _random_batches(np.random.default_rng(0), THROUGHPUT_UTD, batch, obs_dim, noise_shape[0] * noise_shape[1])
    agent.update(batches)  # compile
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        agent.update(batches)
        steps += THROUGHPUT_UTD
    return steps / (time.perf_counter() - start)


def _sb3_steps_per_s(hidden: int, batch: int, obs_dim: int, latent_dim: int, seconds: float) -> float:
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    class Blank(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.5, 1.5, (latent_dim,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(obs_dim, np.float32), {}

        def step(self, action):
            return np.zeros(obs_dim, np.float32), 0.0, False, False, {}

    # The settings DSRL's released code passes to SB3: 2 critics, tau 0.005, auto entropy, target 0.
    model = SAC("MlpPolicy", Blank(), batch_size=batch, buffer_size=10_000, learning_starts=0, tau=0.005,
                ent_coef="auto", target_entropy=0.0, device="cpu", seed=0,
                policy_kwargs={"net_arch": [hidden] * THROUGHPUT_LAYERS, "n_critics": THROUGHPUT_CRITICS,
                               "activation_fn": torch.nn.Tanh})
    model.set_logger(Logger(folder=None, output_formats=[]))  # no log files
    rng = np.random.default_rng(0)
    for _ in range(2 * batch):
        model.replay_buffer.add(rng.normal(size=(1, obs_dim)), rng.normal(size=(1, obs_dim)),
                                rng.uniform(-1, 1, (1, latent_dim)), rng.random(1), rng.random(1) < 0.05, [{}])
    model.train(gradient_steps=5, batch_size=batch)  # warm-up
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train(gradient_steps=THROUGHPUT_UTD, batch_size=batch)
        steps += THROUGHPUT_UTD
    return steps / (time.perf_counter() - start)


def bench_throughput(seconds: float = 20.0) -> dict:
    """Gradient steps per second of the DSRL-SAC update against stable-baselines3 SAC, same networks."""
    obs_dim, noise_shape, batch = 141, (4, 7), 256  # state features + the policy embedding; chunk 4 x 7
    result: dict = {"batch_size": batch, "obs_dim": obs_dim, "latent_dim": noise_shape[0] * noise_shape[1],
                    "critics": THROUGHPUT_CRITICS, "layers": THROUGHPUT_LAYERS, "activation": "tanh"}
    for hidden in (256, 1024):
        ours = _dsrl_steps_per_s(hidden, batch, obs_dim, noise_shape, seconds)
        try:
            theirs = _sb3_steps_per_s(hidden, batch, obs_dim, noise_shape[0] * noise_shape[1], seconds)
        except ImportError:
            theirs = float("nan")
            result["sb3"] = "not installed: pip install stable-baselines3 (with torch) to compare"
        result[str(hidden)] = {"dsrl_steps_per_s": round(ours, 1), "sb3_steps_per_s": round(theirs, 1),
                               "ratio": round(ours / theirs, 2) if theirs == theirs else None}
    return result


LEARNING_RUNS = (
    ("dsrl_sac", ["agent.algorithm=dsrl_sac"]),
    ("dsrl_na", ["agent.preset=sim_cpu_na"]),
    ("sac_action_space", ["train.action_space_baseline=true"]),
)


def bench_learning(env_steps: int = 5000, eval_episodes: int = 50, curve_episodes: int = 20,
                   out_dir: str = "runs/bench-learning") -> dict:
    """DSRL-SAC, DSRL-NA and action-space SAC on the simulated monkey task (state-based, sparse
    success reward, CPU preset), from the default-recipe base policy, on the same step budget. The
    base rate and each run's final success take `eval_episodes` trials, the learning curve's periodic
    evaluations `curve_episodes`. The runs go one after the other: each already keeps both cores busy
    (side by side in single-threaded workers, measured on 2 cores, they took longer in total)."""
    from ..analysis.metrics import plot_learning_curve, read_records
    from ..config import load_config
    from ..policies.pipeline import base_success, pretrain_from_demos
    from ..train.trainer import DSRLTrainer

    start = time.perf_counter()
    out = Path(out_dir) / time.strftime("%Y%m%d-%H%M%S")
    base_cfg = load_config(overrides=["cameras=[]", "agent.preset=sim_cpu"])
    policy, _, _ = pretrain_from_demos(base_cfg, out / "base")
    result: dict = {"task": "monkey", "env_steps_budget": env_steps, "eval_episodes": eval_episodes, "curve_episodes": curve_episodes,
                    "base_success_rate": base_success(base_cfg, policy, eval_episodes)["success_rate"]}
    curves = []
    for label, overrides in LEARNING_RUNS:
        cfg = load_config(overrides=[
            "cameras=[]", "agent.preset=sim_cpu", f"train.out_dir={out / label}", f"train.env_steps={env_steps}",
            f"train.eval_episodes={curve_episodes}", f"train.final_eval_episodes={eval_episodes}", "train.wandb=disabled", *overrides,
        ])
        run_start = time.perf_counter()
        trainer = DSRLTrainer(cfg, policy=policy)
        try:
            run = trainer.run()
        finally:
            trainer.close()
        result[label] = {"base_success_rate": result["base_success_rate"], "final_success_rate": run["final_success_rate"],
                         "final_ci95": run["final_ci95"], "env_steps": run["env_steps"],
                         "wall_s": round(time.perf_counter() - run_start, 1)}
        curves += [r for r in read_records(out / label / "metrics.jsonl") if r["kind"] in ("eval", "final_eval")]
    result["learning_curve"] = str(plot_learning_curve(curves, out / "learning_curve.png", "monkey, sparse success reward"))
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def bench_recording() -> dict:
    """Recording's overhead on a simulated episode with two 128x128 cameras (recording/bench.py)."""
    from .recording import bench_recording as run

    return run()


class _SlowBackend:
    """Bench-only: a reward backend that takes `delay_s` per call (a big model on a slow GPU), answering
    from the simulator's truth."""

    def __init__(self, inner, delay_s: float):
        self.inner, self.delay_s, self.calls = inner, delay_s, 0
        self.name, self.offers = "slow_sim_truth", inner.offers

    def score_episode(self, clip):
        self.calls += 1
        time.sleep(self.delay_s)
        return self.inner.score_episode(clip)

    def score_prefix(self, clip):
        self.calls += 1
        time.sleep(self.delay_s)
        return self.inner.score_prefix(clip)


class _ExpertChunks:
    """Bench-only base policy: the scripted expert, one action per chunk (it acts on the newest state)."""

    chunk_size, action_dim, noise_shape = 1, 7, (1, 7)

    def __init__(self, env, noise: float, seed: int):
        from ..sim.expert import ScriptedExpert

        self.expert = ScriptedExpert(env.scene.sim, noise=noise, seed=seed)

    def sample(self, obs, noise):
        return self.expert.act()[None, None]

    def embed(self, obs):
        return np.zeros((len(obs["proprio"]), 0), np.float32)


def bench_reward_wait(episodes: int = 4, delay_s: float = 2.0, expert_noise: float = 0.1) -> dict:
    """How long the control loop waits on a reward backend that takes `delay_s` per call, with the env
    in real time at 5 Hz, the success detector and stage tracker on (monkey task, 2 stages), and the
    whole-episode score overlapping the next reset as in training. Target: wait_fraction <= 0.05."""
    from ..config import load_config
    from ..envs.make import build_env
    from ..rewards.registry import build_reward_backend
    from ..rewards.scoring import RewardRuntime
    from ..train.trainer import FeatureFn, run_chunk_episode

    cfg = load_config(overrides=["cameras=[{name: third_person, view: third_person, width: 64, height: 64}]", "env.real_time=true"])
    env = build_env(cfg)
    backend = _SlowBackend(build_reward_backend(cfg), delay_s)
    runtime = RewardRuntime(cfg, env.task, env.control_hz, backend)
    env.terminate_on_success = False  # the detector ends episodes
    policy = _ExpertChunks(env, expert_noise, seed=0)
    features = FeatureFn(policy, env, "policy_embedding")
    rows, scored = [], None
    for i in range(episodes):
        obs, info = env.reset(seed=i)
        start = time.perf_counter()
        if scored is not None:
            scored.result()  # the previous episode's score, overlapped with the reset (instant in simulation)
        score_wait = time.perf_counter() - start
        start = time.perf_counter()
        ep = run_chunk_episode(env, policy, features, lambda f: np.zeros((1, 7), np.float32), obs, info, runtime.monitor)
        wall = time.perf_counter() - start
        scored = runtime.score(ep.frames, ep.truth, ep.step_frames, ep.stage_starts)
        rows.append({"wall_s": wall, "wait_s": ep.reward_wait_s, "steps": ep.env_steps, "end": ep.end_reason,
                     "success": ep.success, "detected_success": ep.detected_success, "stage_reached": len(ep.stage_starts) - 1,
                     "previous_score_wait_s": score_wait})
    scored.result()
    runtime.close()
    env.close()
    wall, wait = sum(r["wall_s"] for r in rows), sum(r["wait_s"] for r in rows)
    return {
        "wait_fraction": round(wait / wall, 5), "target_wait_fraction": 0.05,
        "episodes": episodes, "backend_delay_s": delay_s, "control_hz": env.control_hz,
        "mean_episode_wall_s": round(wall / episodes, 2), "mean_wait_s_per_episode": round(wait / episodes, 4),
        "calls": backend.calls, "prefix_calls": runtime.scorer.prefix_calls, "prefix_requests_dropped": runtime.scorer.dropped,
        "rate_overruns": env.rate.stats.overruns,
        # In training the next episode starts once the previous score is in: a real scene reset (tens of
        # seconds) hides this; the simulator resets instantly, so here it shows.
        "mean_wait_for_previous_score_s": round(sum(r["previous_score_wait_s"] for r in rows[1:]) / max(episodes - 1, 1), 3),
        "per_episode": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
    }


class _NoisyProgress:
    """Bench-only stand-in for a learned progress/success model: it sees 1 on success and 0.8 x the
    simulator's progress for the asked stage otherwise, plus Gaussian noise; its success probability
    is a steep sigmoid of that around `centre`. Nearly finished failures then sometimes look
    successful, as they do to reward models."""

    def __init__(self, inner, noise: float, seed: int, centre: float = 0.9, width: float = 0.05):
        self.inner, self.noise, self.centre, self.width = inner, noise, centre, width
        self.rng = np.random.default_rng(seed)
        self.name, self.offers = "noisy_sim_truth", inner.offers

    def score_prefix(self, clip):
        from ..rewards.base import ProgressScore

        truth = self.inner.score_prefix(clip)
        seen = 1.0 if truth.success_prob >= 1 else 0.8 * float(truth.progress[-1])
        seen += self.rng.normal(0.0, self.noise)
        return ProgressScore(truth.progress, float(1 / (1 + np.exp(-(seen - self.centre) / self.width))))


def bench_detector(episodes: int = 60, expert_noise: float = 0.5, noise: float = 0.1, windows: tuple[int, ...] = (1, 3, 5)) -> dict:
    """The success detector and stage tracker on recorded simulated episodes (monkey task, 2 stages;
    the scripted expert with heavy noise, so many episodes fail near the goal): how often a failed
    episode is wrongly detected as a success (false triggers), and how often and how late successes
    are detected, per majority window, for simulator truth and for a noisy stand-in of a learned model."""
    from ..config import load_config
    from ..envs.make import build_env
    from ..rewards.base import EpisodeClip
    from ..rewards.detection import StageTracker, SuccessDetector
    from ..rewards.registry import build_reward_backend
    from ..rollout import scripted_expert

    cfg = load_config(overrides=["cameras=[]"])
    env = build_env(cfg)
    env.terminate_on_success = False
    truth_backend = build_reward_backend(cfg)
    recorded = []
    for i in range(episodes):
        act = scripted_expert(env, expert_noise, seed=i)
        obs, info = env.reset(seed=i)
        truth, done = [info["task_status"]], False
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            truth.append(info["task_status"])
            done = terminated or truncated
        recorded.append(truth)

    def replay(backend, window: int) -> dict:
        on_failed = early = failed = detected = succeeded = 0
        delays = []
        for truth in recorded:
            tracker = StageTracker(env.task.stages, SuccessDetector(0.6, window))
            first_success = next((t for t, s in enumerate(truth) if s.success), None)
            for t in range(1, len(truth)):
                clip = EpisodeClip({}, tracker.instruction, env.control_hz, tuple(truth[tracker.stage_start:t + 1]))
                change = tracker.report(tracker.stage, backend.score_prefix(clip).success_prob, t)
                if change is not None and change.done:
                    on_failed += first_success is None
                    early += first_success is not None and not truth[t].success
                    detected += truth[t].success
                    if truth[t].success and first_success is not None:
                        delays.append(t - first_success)
                    break
            failed += first_success is None
            succeeded += first_success is not None
        return {"false_trigger_rate_on_failed": round(on_failed / max(failed, 1), 3), "false_triggers_on_failed": on_failed,
                "early_trigger_rate_on_successful": round(early / max(succeeded, 1), 3),
                "detection_rate_on_successful": round(detected / max(succeeded, 1), 3),
                "mean_detection_delay_steps": round(float(np.mean(delays)), 2) if delays else None}

    result: dict = {"episodes": episodes, "task": env.task.name, "stages": len(env.task.stages), "threshold": 0.6,
                    "expert_noise": expert_noise, "noisy_model_noise": noise,
                    "successful_episodes": sum(any(s.success for s in t) for t in recorded)}
    result["failed_episodes"] = episodes - result["successful_episodes"]
    for window in windows:
        result[f"window_{window}"] = {"sim_truth": replay(truth_backend, window),
                                      "noisy_model": replay(_NoisyProgress(truth_backend, noise, seed=window), window)}
    return result


BENCHMARKS = {
    "sim": bench_sim,
    "base-policy": bench_base_policy,
    "policy-latency": bench_policy_latency,
    "throughput": bench_throughput,
    "learning": bench_learning,
    "reward-wait": bench_reward_wait,
    "detector": bench_detector,
    "recording": bench_recording,
}
