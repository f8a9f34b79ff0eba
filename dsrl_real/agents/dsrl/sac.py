"""DSRL-SAC: SAC on the latent-noise MDP, one gradient step (Wagenmaker et al. 2025, Alg. 1; Haarnoja et al. 2018).

In order: the critic step on y = r + gamma (1 - d) (backup_k Q_target_k(s', w') - alpha log pi(w'|s')),
w' ~ pi(.|s') (with the pre-step actor and alpha), the actor step against the just-updated critic, the
temperature step, the Polyak step of the target critic. Rows without noise (demos) are masked out of the
critic's loss and still serve as states for the actor."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .losses import critic_loss
from .model import Model
from .updates import actor_update, backup_candidates, critic_update, end_of_step, soft_td_target, temperature_update


def sac_step(model: Model, state, batch, hp):
    """-> (state, metrics, info) for one minibatch (a prepared batch, see `batches.prepare`)."""
    rng, k_next, k_actor = jax.random.split(state["rng"], 3)
    alpha = jnp.exp(state["log_alpha"])
    inputs = model.inputs.for_training(state, batch)

    next_w, next_log_prob = model.sample_latent(state["actor"], inputs.next_actor, k_next, hp["action_magnitude"])
    next_q = backup_candidates(model.critic.apply(state["target_critic"], inputs.next_critic, next_w), k_next, hp)
    y = soft_td_target(batch, next_q, next_log_prob, alpha, hp)
    mask = batch["has_noise"]
    state, loss, q = critic_update(model, state, batch["features"], batch["noise"], lambda q: critic_loss(q, y, mask),
                                   hp["learning_rate"], inputs.images)

    features = model.inputs.for_actor(state, batch["features"], inputs.images)
    state, metrics, actor_info = actor_update(model, state, features, k_actor, state["critic"], hp)
    state, temperature_metrics = temperature_update(state, metrics["entropy"], hp)

    state = end_of_step(model, state, rng, hp, inputs.aug_rng)
    n = jnp.maximum(jnp.sum(mask), 1.0)
    metrics.update(temperature_metrics, critic_loss=loss, q_mean=jnp.sum(mask * jnp.mean(q, 0)) / n,
                   target_q_mean=jnp.sum(mask * y) / n, noise_fraction=jnp.mean(mask))
    info = {"td_target": y, "next_noise": next_w, "next_log_prob": next_log_prob, "next_q": next_q, "alpha": alpha, **actor_info}
    return state, metrics, info
