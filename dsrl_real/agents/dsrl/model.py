"""The agent's networks and shapes, without parameters: one per structure, shared by agents that match it."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .distributions import tanh_gaussian_sample
from .inputs import Inputs
from .networks import Actor, CriticEnsemble
from .optim import adam_init
from .spec import AgentSpec


class Model:
    """The actor pi(w|s), the critic ensemble (SAC's Q(s, w); NA's Q^A(s, a), and Q^W(s, w) with the same
    architecture) and what they read (`inputs`)."""

    def __init__(self, spec: AgentSpec):
        c = spec.structure
        self.spec = spec
        self.na = spec.na
        self.noise_shape, self.latent_dim, self.action_dim = spec.noise_shape, spec.latent_dim, spec.action_dim
        self.action_bounds = spec.action_bounds
        self.distill_steps = c["na_distill_steps"]
        if spec.image_shapes:
            shift = c["image_shift_pixels"] if c["image_augmentation"] == "shift" else 0
            self.inputs = Inputs(spec.obs_dim, spec.image_shapes, c["encoder_channels"], c["encoder_dim"], shift)
        else:
            self.inputs = Inputs(spec.obs_dim, {})
        self.actor = Actor(self.latent_dim, c["hidden_dim"], c["num_layers"], c["activation"])
        self.critic = CriticEnsemble(c["num_critics"], c["hidden_dim"], c["num_layers"], c["activation"])

    def init_state(self, key, log_alpha, learning_rate) -> dict[str, Any]:
        """Parameters, targets, the evaluation actor, Adam states, log alpha, the update (`rng`) and acting (`act_rng`) streams, the step."""
        k_actor, k_critic, k_qw, k_rng, k_act = jax.random.split(key, 5)
        f = jnp.zeros((1, self.inputs.dim), jnp.float32)
        critic_in = jnp.zeros((1, self.action_dim if self.na else self.latent_dim), jnp.float32)
        actor = self.actor.init(k_actor, f)
        critic = self.critic.init(k_critic, f, critic_in)
        state = {
            "actor": actor,
            "eval_actor": actor,
            "critic": critic,
            "target_critic": critic,
            "log_alpha": log_alpha,
            "opt_actor": adam_init(actor, learning_rate),
            "opt_critic": adam_init(critic, learning_rate),
            "opt_alpha": adam_init(log_alpha, learning_rate),
            "rng": k_rng,
            "act_rng": k_act,
            "step": jnp.zeros((), jnp.int32),
        }
        if self.na:
            qw = self.critic.init(k_qw, f, jnp.zeros((1, self.latent_dim), jnp.float32))
            state["qw"] = qw
            state["opt_qw"] = adam_init(qw, learning_rate)
            state["distill_loss"] = jnp.float32(jnp.nan)  # the latest distillation's loss (none yet)
        return state

    def sample_latent(self, actor_params, features, key, magnitude):
        """w ~ pi(.|s) and log pi(w|s)."""
        mean, log_std = self.actor.apply(actor_params, features)
        return tanh_gaussian_sample(mean, log_std, jax.random.normal(key, mean.shape), magnitude)

    def act(self, actor_params, features, key, magnitude, deterministic: bool):
        """Noise (B, H, A): magnitude * tanh(mean) if `deterministic`, else w ~ pi(.|s)."""
        mean, log_std = self.actor.apply(actor_params, features)
        if deterministic:
            w = magnitude * jnp.tanh(mean)
        else:
            w, _ = tanh_gaussian_sample(mean, log_std, jax.random.normal(key, mean.shape), magnitude)
        return w.reshape(w.shape[0], *self.noise_shape)

    def scale_actions(self, a):
        """NA: executed chunks from `action_bounds` to [-1, 1] (unchanged without bounds)."""
        if self.action_bounds is None:
            return a
        low, high = self.action_bounds
        return 2.0 * (a - low) / (high - low) - 1.0
