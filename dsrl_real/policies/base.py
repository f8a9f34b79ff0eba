"""What DSRL needs from a base policy: a deterministic map from (observation, noise) to an action chunk.

A policy may also offer `fit_noise(obs, chunks, magnitude) -> (noise, error)`: noise in (-magnitude, magnitude)
whose chunks come closest to recorded ones (the diffusion policy does, policies/diffusion.py). With it, DSRL-SAC
learns from seeded episodes recorded without noise (train.seed_noise)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class BasePolicy(Protocol):
    chunk_size: int  # H: actions per chunk
    action_dim: int  # A: dimensions per action

    @property
    def noise_shape(self) -> tuple[int, int]:
        """(H, A): the shape of the sampler's initial noise, i.e. DSRL's latent action."""

    def sample(self, obs: Mapping[str, np.ndarray], noise: np.ndarray) -> np.ndarray:
        """Action chunks (B, H, A) for batched observations and noise (B, H, A).

        Must be a deterministic function of its inputs: the same noise gives the same chunk.
        """

    def embed(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The policy's frozen observation features (B, E), for a small DSRL agent."""
