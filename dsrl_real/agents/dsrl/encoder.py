"""The agent's own image encoder (`agent.features=observation` with cameras) and DrQ's random shift.

Pixel SAC as in SAC-AE (Yarats et al. 2019) and DrQ (Kostrikov et al. 2020): per camera the base policy's
strided CNN, then Linear -> LayerNorm -> tanh; the cameras' features concatenated. How the agent trains
it (critic loss only, a Polyak target encoder) is in `inputs.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ...policies.diffusion import ConvEncoder

AUGMENTATIONS = ("shift", "none")


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


def random_shift(images: jnp.ndarray, key, pad: int) -> jnp.ndarray:
    """DrQ's augmentation: each image of the batch (B, H, W, C) moved by its own integer offset in
    [-pad, pad] along each axis, the border pixels replicated; shape and dtype kept (uint8 stays uint8)."""
    if pad <= 0:
        return images
    h, w, c = images.shape[-3:]
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pad + 1)
    return jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))(padded, offsets)


def augment(images: Mapping[str, jnp.ndarray], key, pad: int, keys: Sequence[str]) -> dict[str, jnp.ndarray]:
    """`random_shift` on every camera in `keys`, each with its own key derived from `key`."""
    return {k: random_shift(images[k], jax.random.fold_in(key, i), pad) for i, k in enumerate(keys)}
