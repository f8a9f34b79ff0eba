"""The plain-SAC baseline's 'base policy' (train.action_space_baseline)."""

from __future__ import annotations

from typing import Any

import numpy as np


class ActionSpacePolicy:
    """The plain-SAC baseline as a 'base policy': the latent in [-1, 1]^A *is* the (rescaled) action.
    `embedder`: a policy whose frozen embedding the baseline reads (train.action_space_features=policy_embedding);
    without one it embeds nothing."""

    def __init__(self, low: np.ndarray, high: np.ndarray, embedder: Any = None):
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.chunk_size, self.action_dim = 1, len(self.low)
        self.embedder = embedder

    @property
    def noise_shape(self) -> tuple[int, int]:
        return (1, self.action_dim)

    def sample(self, obs, noise) -> np.ndarray:
        return self.low + (np.clip(np.asarray(noise, np.float32), -1, 1) + 1) / 2 * (self.high - self.low)

    def embed(self, obs) -> np.ndarray:
        if self.embedder is not None:
            return self.embedder.embed(obs)
        return np.zeros((len(next(iter(obs.values()))), 0), np.float32)
