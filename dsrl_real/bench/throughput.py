"""`dsrl-real bench throughput`: gradient steps per second of the DSRL-SAC update against stable-baselines3 SAC."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from ..agents.dsrl import DSRLAgent
from ..config import AgentConfig


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
    import torch  # optional (pip install dsrl_real[bench]): without it the comparison is left out
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
