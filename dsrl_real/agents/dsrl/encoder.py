"""The agent's own image encoder (`agent.features=observation` with cameras); DrQ's random shift is in
policies/augmentation.py.

Pixel SAC as in SAC-AE (Yarats et al. 2019) and DrQ (Kostrikov et al. 2020): per camera the base policy's
strided CNN, then Linear -> LayerNorm -> tanh; the cameras' features concatenated. How the agent trains
it (critic loss only, a Polyak target encoder) is in `inputs.py`."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax.numpy as jnp

from ...policies.augmentation import augment, random_shift
from ...policies.diffusion import ConvEncoder

AUGMENTATIONS = ("shift", "none")
__all__ = ["AUGMENTATIONS", "ImageEncoder", "augment", "random_shift"]


class ImageEncoder(nn.Module):
    """{camera key: (B, H, W, C) uint8} -> (B, len(keys) * dim) float features in (-1, 1)."""

    keys: tuple[str, ...]
    channels: tuple[int, ...]
    dim: int

    @nn.compact
    def __call__(self, images: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
        parts = []
        for k in self.keys:
            x = ConvEncoder(self.channels, self.dim, name=f"conv_{k}")(images[k])  # ends in the Linear
            parts.append(jnp.tanh(nn.LayerNorm(name=f"norm_{k}")(x)))
        return jnp.concatenate(parts, axis=-1)
