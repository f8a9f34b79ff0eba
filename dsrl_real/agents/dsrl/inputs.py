"""What the networks read: the feature vectors, then (with the agent's own image encoder) its output.

Pixel SAC as in SAC-AE / DrQ: only the critic's TD loss trains the encoder; the actor, the temperature,
w' ~ pi(.|s') and NA's Q^W read its output with the gradient stopped; the target critic reads a target
encoder that follows it by Polyak; training frames are shifted at random (DrQ), s and s' independently,
from the state's own stream `aug_rng`. Without cameras every network reads the features as they are."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .encoder import ImageEncoder, augment
from .optim import adam_init, polyak

IMAGES, NEXT_IMAGES = "images/", "next_images/"  # prefixes of the camera frames in a prepared batch

_ENCODER_INITS: dict[tuple, Callable] = {}


class TrainInputs(NamedTuple):
    """One gradient step's inputs beyond the batch's current features."""

    next_actor: Any  # s' as the actor reads it, for w' ~ pi(.|s') (online encoder, no gradient)
    next_critic: Any  # s' as the target critic reads it (target encoder)
    images: Mapping[str, Any] | None  # the augmented current frames; None without an encoder or in NA's sampling half
    aug_rng: Any  # the advanced augmentation stream (None without an encoder)


class Inputs:
    """The networks' input for `obs_dim` features and, if `image_shapes` is not empty, those cameras."""

    def __init__(self, obs_dim: int, image_shapes: Mapping[str, tuple[int, ...]], channels=(), dim: int = 0, shift: int = 0):
        self.image_shapes = dict(image_shapes)
        self.keys = tuple(self.image_shapes)
        self.encoder = ImageEncoder(self.keys, tuple(channels), dim) if self.keys else None
        self.dim = obs_dim + len(self.keys) * dim
        self.shift = shift

    def init(self, key, learning_rate) -> dict[str, Any]:
        """The encoder's part of the initial state (keys folded from `key`, so the vector agents' splits stay as they are)."""
        if self.encoder is None:
            return {}
        encoder = _encoder_init(self.encoder, self.image_shapes)(jax.random.fold_in(key, 1))
        return {"encoder": encoder, "target_encoder": encoder, "eval_encoder": encoder, "opt_encoder": adam_init(encoder, learning_rate),
                "aug_rng": jax.random.fold_in(key, 2)}

    def encode(self, encoder_params, features, images):
        """The vector features, then the encoder's output for the uint8 frames."""
        return jnp.concatenate([features, self.encoder.apply(encoder_params, images)], axis=-1)

    def for_training(self, state, batch) -> TrainInputs:
        """w' reads the online encoder, the target critic the target encoder, both on the same shifted next
        frames; NA's two halves derive the same augmentation keys from the state."""
        if self.encoder is None:
            return TrainInputs(batch["next_features"], batch["next_features"], None, None)
        aug_rng, k_obs, k_next = jax.random.split(state["aug_rng"], 3)
        next_images = augment({k: batch[NEXT_IMAGES + k] for k in self.keys}, k_next, self.shift, self.keys)
        next_actor = jax.lax.stop_gradient(self.encode(state["encoder"], batch["next_features"], next_images))
        next_critic = self.encode(state["target_encoder"], batch["next_features"], next_images)
        images = None
        if all(IMAGES + k in batch for k in self.keys):  # NA's sampling half gets the next frames only
            images = augment({k: batch[IMAGES + k] for k in self.keys}, k_obs, self.shift, self.keys)
        return TrainInputs(next_actor, next_critic, images, aug_rng)

    def for_actor(self, state, features, images):
        """What the actor, the temperature and Q^W read: the current encoder's output, gradient stopped."""
        if self.encoder is None:
            return features
        return jax.lax.stop_gradient(self.encode(state["encoder"], features, images))

    def follow(self, state, tau, eval_tau, aug_rng) -> dict[str, Any]:
        """The target encoder follows the encoder by Polyak with the target critic's tau, the evaluation
        encoder with the evaluation actor's `eval_tau`."""
        if self.encoder is None:
            return {}
        return {"target_encoder": polyak(state["target_encoder"], state["encoder"], tau),
                "eval_encoder": polyak(state["eval_encoder"], state["encoder"], eval_tau), "aug_rng": aug_rng}


def _encoder_init(encoder: ImageEncoder, image_shapes: dict[str, tuple[int, ...]]) -> Callable:
    """The encoder's jitted initialiser, one per encoder structure: SAC and NA agents share it (its
    random initialisers take seconds to compile on a CPU)."""
    key = (encoder.keys, encoder.channels, encoder.dim, tuple(image_shapes.items()))
    if key not in _ENCODER_INITS:
        frames = {k: jnp.zeros((1, *s), jnp.uint8) for k, s in image_shapes.items()}
        _ENCODER_INITS[key] = jax.jit(lambda rng: encoder.init(rng, frames))
    return _ENCODER_INITS[key]
