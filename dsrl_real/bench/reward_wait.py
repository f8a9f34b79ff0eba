"""`dsrl-real bench reward-wait`: how long the control loop waits on a slow reward backend."""

from __future__ import annotations

import time

import numpy as np

from ..config import load_config
from ..envs.make import build_env
from ..rewards.registry import build_reward_backend
from ..rewards.scoring import RewardRuntime
from ..sim.expert import ScriptedExpert
from ..train.episode import run_chunk_episode
from ..train.features import FeatureFn


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
        self.expert = ScriptedExpert(env.scene.sim, noise=noise, seed=seed)

    def sample(self, obs, noise):
        return self.expert.act()[None, None]

    def embed(self, obs):
        return np.zeros((len(obs["proprio"]), 0), np.float32)


def bench_reward_wait(episodes: int = 4, delay_s: float = 2.0, expert_noise: float = 0.1) -> dict:
    """How long the control loop waits on a reward backend that takes `delay_s` per call, with the env
    in real time at 5 Hz, the success detector and stage tracker on (monkey task, 2 stages), and the
    whole-episode score overlapping the next reset as in training. Target: wait_fraction <= 0.05."""
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
