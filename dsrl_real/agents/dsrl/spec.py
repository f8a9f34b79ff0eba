"""What an agent is built from: the checked structure and shapes, which key its compiled programs, and the
hyperparameters that enter those programs as values at every update (so they may change during a run)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from ...config import AgentConfig, ConfigError
from .encoder import AUGMENTATIONS
from .networks import ACTIVATIONS

ALGORITHMS = ("dsrl_sac", "dsrl_na")
HYPERPARAMS = ("gamma", "tau", "learning_rate", "target_entropy", "action_magnitude", "eval_average_tau")
STRUCTURE = ("algorithm", "hidden_dim", "num_layers", "activation", "num_critics", "na_distill_steps")
ENCODER_STRUCTURE = ("encoder_channels", "encoder_dim", "image_augmentation", "image_shift_pixels")  # with cameras only


@dataclasses.dataclass(frozen=True, eq=False)
class AgentSpec:
    structure: dict[str, Any]  # the STRUCTURE (and, with cameras, ENCODER_STRUCTURE) fields of the config
    obs_dim: int
    noise_shape: tuple[int, int]
    action_shape: tuple[int, ...]
    action_bounds: tuple[np.ndarray, np.ndarray] | None  # NA: Q^A's input is rescaled from these to [-1, 1]
    image_shapes: dict[str, tuple[int, ...]]  # the own encoder's cameras (empty: none)

    @property
    def key(self) -> tuple:
        bounds = None if self.action_bounds is None else (self.action_bounds[0].tobytes(), self.action_bounds[1].tobytes())
        return (tuple(self.structure.items()), self.obs_dim, self.noise_shape, self.action_shape, bounds, tuple(self.image_shapes.items()))

    @property
    def na(self) -> bool:
        return self.structure["algorithm"] == "dsrl_na"

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(self.image_shapes)

    @property
    def latent_dim(self) -> int:
        return self.noise_shape[0] * self.noise_shape[1]

    @property
    def action_dim(self) -> int:
        return math.prod(self.action_shape)


def agent_spec(cfg: AgentConfig, obs_dim: int, noise_shape, action_shape=None, action_bounds=None, image_shapes=None) -> AgentSpec:
    validate(cfg)
    image_shapes = {k: tuple(int(x) for x in image_shapes[k]) for k in sorted(image_shapes or {})}
    if image_shapes:
        validate_encoder(cfg, image_shapes)
    noise_shape = (int(noise_shape[0]), int(noise_shape[1]))
    action_shape = tuple(int(x) for x in (action_shape or noise_shape))
    if action_bounds is not None:
        low, high = (_bounds_array(b, action_shape) for b in action_bounds)
        if np.any(high <= low):
            raise ValueError("action_bounds must have high > low in every dimension.")
        action_bounds = (low, high)
    fields = STRUCTURE + (ENCODER_STRUCTURE if image_shapes else ())
    structure = {k: tuple(v) if isinstance(v, list) else v for k, v in ((k, getattr(cfg, k)) for k in fields)}
    return AgentSpec(structure, int(obs_dim), noise_shape, action_shape, action_bounds, image_shapes)


def hyperparams(cfg: AgentConfig) -> dict[str, jnp.ndarray]:
    """The programs' run-time values, read from the config at every update (the ensemble choices as 0/1 flags)."""
    hp = {k: jnp.float32(getattr(cfg, k)) for k in HYPERPARAMS}
    hp["backup_mean"] = jnp.float32(cfg.critic_backup == "mean")
    hp["actor_mean"] = jnp.float32(cfg.actor_objective == "mean")
    hp["backup_subset"] = jnp.float32(cfg.backup_subset)
    hp["backup_entropy"] = jnp.float32(cfg.backup_entropy)
    return hp


def validate(cfg: AgentConfig) -> None:
    if cfg.algorithm not in ALGORITHMS:
        raise ConfigError(f"agent.algorithm='{cfg.algorithm}' is unknown; use one of: {', '.join(ALGORITHMS)}.")
    if cfg.critic_backup not in ("min", "mean"):
        raise ConfigError(f"agent.critic_backup='{cfg.critic_backup}' is unknown; use min or mean.")
    if not 0 <= cfg.backup_subset <= cfg.num_critics:
        raise ConfigError(f"agent.backup_subset={cfg.backup_subset} must lie between 0 (every critic) and agent.num_critics "
                          f"({cfg.num_critics}).")
    if cfg.actor_objective not in ("min", "mean"):
        raise ConfigError(f"agent.actor_objective='{cfg.actor_objective}' is unknown; use min or mean.")
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(f"agent.activation='{cfg.activation}' is unknown; use one of: {', '.join(ACTIVATIONS)}.")
    if min(cfg.num_critics, cfg.num_layers, cfg.hidden_dim) < 1 or cfg.action_magnitude <= 0 or cfg.init_temperature <= 0:
        raise ConfigError("agent.num_critics, num_layers, hidden_dim, action_magnitude and init_temperature must be positive.")
    if cfg.n_step < 1:
        raise ConfigError(f"agent.n_step={cfg.n_step} must be at least 1 (1: one-step TD targets).")
    if cfg.algorithm == "dsrl_na" and cfg.na_distill_steps < 1:
        raise ConfigError("agent.na_distill_steps must be at least 1 for dsrl_na.")
    distill_every(cfg)


def validate_encoder(cfg: AgentConfig, image_shapes: Mapping[str, tuple[int, ...]]) -> None:
    if cfg.features != "observation":
        raise ConfigError(f"Camera frames for the agent's own image encoder need agent.features=observation (it is '{cfg.features}').")
    bad = [k for k, s in image_shapes.items() if len(s) != 3]
    if bad:
        raise ValueError(f"image_shapes must be (height, width, channels) per camera; got {[image_shapes[k] for k in bad]} for {bad}.")
    if cfg.image_augmentation not in AUGMENTATIONS:
        raise ConfigError(f"agent.image_augmentation='{cfg.image_augmentation}' is unknown; use one of: {', '.join(AUGMENTATIONS)}.")
    if not cfg.encoder_channels or min(cfg.encoder_channels) < 1 or cfg.encoder_dim < 1 or cfg.image_shift_pixels < 0:
        raise ConfigError("agent.encoder_channels (a non-empty list) and agent.encoder_dim must be positive, "
                          "agent.image_shift_pixels not negative.")


def distill_every(cfg: AgentConfig) -> int:
    """`cfg.na_distill_every`, checked (also at every update, since the config may change in a run)."""
    every = cfg.na_distill_every
    if not isinstance(every, int) or every < 1:
        raise ConfigError(f"agent.na_distill_every={every!r} must be an integer of at least 1 (1: distil Q^W on every gradient step).")
    return every


def _bounds_array(bound, action_shape) -> np.ndarray:
    """A bound per action dim (A,), per chunk entry (H, A) or flattened (H*A, as checkpoints hold it) -> (H*A,)."""
    bound = np.asarray(bound, np.float32)
    if bound.size == math.prod(action_shape):
        bound = bound.reshape(action_shape)
    return np.broadcast_to(bound, action_shape).reshape(-1).copy()
