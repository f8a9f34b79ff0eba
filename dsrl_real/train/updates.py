"""The learner's work for one absorbed episode, the same wherever the learner runs (learner.mode inline or
ray): how many agent updates it owes, and running them on batches drawn from the replay buffer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..agents.dsrl import DSRLAgent
from ..data.replay import ReplayBuffer


def updates_due(index: int, warm_start_episodes: int, transitions: int, chunk_steps: int, updates_per_chunk: int) -> int:
    """Agent updates owed for the `index`-th episode (1-based) once it is in the buffer: none during the
    warm start, one per transition in the buffer when the warm start ends, else one per chunk step;
    each times train.updates_per_chunk."""
    if index < warm_start_episodes:
        return 0
    return (transitions if index == warm_start_episodes else chunk_steps) * updates_per_chunk


def draw(agent: DSRLAgent, buffer: ReplayBuffer, rng: np.random.Generator) -> dict:
    """One update's minibatches: agent.utd of agent.batch_size, drawn from `buffer` with `rng`."""
    cfg = agent.cfg
    return buffer.sample(cfg.batch_size, rng, num_batches=cfg.utd, include_obs=agent.na or bool(agent.image_keys),
                         n_step=cfg.n_step, gamma=cfg.gamma)


def learn(agent: DSRLAgent, buffer: ReplayBuffer, rng: np.random.Generator, updates: int,
          denoise: Callable | None) -> dict[str, float]:
    """`updates` agent updates, each on a fresh `draw`; the last update's metrics ({} when none).
    `denoise` is the base policy's sampler (DSRL-NA only)."""
    metrics: dict[str, float] = {}
    for _ in range(updates):
        metrics = agent.update(draw(agent, buffer, rng), denoise=denoise if agent.na else None)
    return metrics
