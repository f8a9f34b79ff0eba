"""`dsrl-real bench policy-latency`: batch-1 action-chunk latency of the base policy."""

from __future__ import annotations

import time

import jax
import numpy as np

from ..config import load_config
from ..config.observations import observation_label, observation_overrides
from ..envs.make import build_env
from ..policies.diffusion import DiffusionPolicy, Normalization, init_params


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


def bench_policy_latency(trials: int = 300, obs: str = "pixels") -> dict:
    """Batch-1 action-chunk latency of the default base policy (DSRL actor excluded) on the observation mode's
    inputs, 8 DDIM steps."""
    cfg = load_config(overrides=[*observation_overrides(obs), "policy.inference_steps=8"])
    env = build_env(cfg)
    try:
        frame, _ = env.reset(seed=0)
        low, high = env.action_space.low, env.action_space.high
    finally:
        env.close()
    batch = {k: v[None] for k, v in frame.items()}
    p = cfg.policy
    norm = Normalization.fit({k: batch[k] for k in p.vector_keys}, np.stack([low, high]), low, high)
    shell = DiffusionPolicy(p, len(low), norm, None)
    policy = DiffusionPolicy(p, len(low), norm, init_params(p, len(low), shell.prepare(batch), jax.random.PRNGKey(0)))
    p50, p99 = _latency_ms(policy, batch, trials)
    return {"observations": observation_label(cfg), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
            "inference_steps": p.inference_steps, "cameras": len(p.image_keys), "trials": trials}
