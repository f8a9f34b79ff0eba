"""`dsrl-real bench policy-latency`: batch-1 action-chunk latency of the base policy."""

from __future__ import annotations

import time

import jax
import numpy as np

from ..config import PolicyConfig
from ..envs.make import make_sim_env
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


def bench_policy_latency(trials: int = 300) -> dict:
    """Batch-1 action-chunk latency of the base policy (DSRL actor excluded), 8 DDIM steps."""
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
