"""DrQ's random shift (Kostrikov et al. 2020) for uint8 camera frames, used by the base policy's
pretraining and by the DSRL agent's own image encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp


def random_shift(images: jnp.ndarray, key, pad: int) -> jnp.ndarray:
    """Each image of the batch (B, H, W, C) moved by its own integer offset in [-pad, pad] along each
    axis, the border pixels replicated; shape and dtype kept (uint8 stays uint8)."""
    if pad <= 0:
        return images
    h, w, c = images.shape[-3:]
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * pad + 1)
    return jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))(padded, offsets)


def augment(images: Mapping[str, jnp.ndarray], key, pad: int, keys: Sequence[str]) -> dict[str, jnp.ndarray]:
    """`random_shift` on every camera in `keys`, each with its own key derived from `key`."""
    return {k: random_shift(images[k], jax.random.fold_in(key, i), pad) for i, k in enumerate(keys)}
