"""The actor and the critic ensemble (Flax). Class names fix the parameter names in checkpoints."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
ACTIVATIONS: dict[str, Callable] = {"tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu}


class MLP(nn.Module):
    """Dense -> LayerNorm -> activation, `num_layers` times, then a linear head.

    Same layout as `policies.diffusion.MLP`, whose activation is fixed to GELU; the agent needs it
    configurable (`cfg.activation`)."""

    hidden_dim: int
    num_layers: int
    out_dim: int
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for _ in range(self.num_layers):
            x = act(nn.LayerNorm()(nn.Dense(self.hidden_dim)(x)))
        return nn.Dense(self.out_dim)(x)


class Actor(nn.Module):
    """Pre-tanh diagonal Gaussian over the D = H*A latent dims: (mean, log_std), each (B, D)."""

    latent_dim: int
    hidden_dim: int
    num_layers: int
    activation: str

    @nn.compact
    def __call__(self, features):
        out = MLP(self.hidden_dim, self.num_layers, 2 * self.latent_dim, self.activation)(features)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class Critic(nn.Module):
    """Q(s, x) for features s and a flat action x (the latent w, or NA's executed chunk a)."""

    hidden_dim: int
    num_layers: int
    activation: str

    @nn.compact
    def __call__(self, features, action):
        return MLP(self.hidden_dim, self.num_layers, 1, self.activation)(jnp.concatenate([features, action], -1))[..., 0]


class CriticEnsemble(nn.Module):
    """`num` independent critics with stacked parameters; output (num, B)."""

    num: int
    hidden_dim: int
    num_layers: int
    activation: str

    @nn.compact
    def __call__(self, features, action):
        stacked = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return stacked(self.hidden_dim, self.num_layers, self.activation, name="ensemble")(features, action)
