"""The gradient steps SAC and NA share: the soft TD target, a critic step, an actor step, a temperature step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .distributions import tanh_gaussian_sample
from .losses import actor_loss, backup_subset, td_target, temperature_loss
from .model import Model
from .optim import adam_step, polyak


def soft_td_target(batch, next_q, next_log_prob, alpha, hp):
    """y = r + gamma^n (1 - terminated) (backup_k Q_k(s', w') - alpha log pi(w'|s')), no gradient; n = the
    batch's `bootstrap_steps` (n-step rows carry the discounted reward sum); the entropy term only with
    `backup_entropy`. Only termination cuts the bootstrap: a time-limit truncation bootstraps."""
    y = td_target(batch["reward"], batch["terminated"], next_q, next_log_prob, alpha * hp["backup_entropy"],
                  hp["gamma"] ** batch["bootstrap_steps"], hp["backup_mean"])
    return jax.lax.stop_gradient(y)


def backup_candidates(next_q, key, hp):
    """The target critics' values the TD target's min may take: a random `backup_subset` of them (REDQ)
    with a min backup, all of them otherwise. `key` stays usable: the subset draws from a key folded out of it."""
    subset = backup_subset(next_q, jax.random.fold_in(key, 1), hp["backup_subset"])
    return jnp.where(hp["backup_mean"] > 0.5, next_q, subset)


def critic_update(model: Model, state, features, critic_in, loss: Callable, lr, images=None):
    """One Adam step on loss(Q(s, x)) -> (state, loss, Q (K, B)). With `images` (the augmented frames) the
    gradient also trains the encoder (its own Adam state, the same learning rate)."""

    def loss_fn(params, encoder):
        f = features if encoder is None else model.inputs.encode(encoder, features, images)
        q = model.critic.apply(params, f, critic_in)  # (K, B)
        return loss(q), q

    if images is None:
        (value, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["critic"], None)
        update = {}
    else:
        (value, q), (grads, enc_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(state["critic"], state["encoder"])
        encoder, opt_encoder = adam_step(enc_grads, state["opt_encoder"], state["encoder"], lr)
        update = {"encoder": encoder, "opt_encoder": opt_encoder}
    critic, opt = adam_step(grads, state["opt_critic"], state["critic"], lr)
    return {**state, "critic": critic, "opt_critic": opt, **update}, value, q


def actor_update(model: Model, state, features, key, q_params, hp) -> tuple[dict, dict, dict[str, Any]]:
    """One Adam step on the actor loss against the critics `q_params` (SAC: Q; NA: Q^W), w reparameterised
    with noise from `key` -> (state, metrics, info)."""
    alpha = jnp.exp(state["log_alpha"])
    eps = jax.random.normal(key, (features.shape[0], model.latent_dim))

    def loss_fn(params):
        mean, log_std = model.actor.apply(params, features)
        w, log_prob = tanh_gaussian_sample(mean, log_std, eps, hp["action_magnitude"])
        return actor_loss(log_prob, model.critic.apply(q_params, features, w), alpha, hp["actor_mean"]), (log_prob, w)

    (loss, (log_prob, w)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["actor"])
    actor, opt_actor = adam_step(grads, state["opt_actor"], state["actor"], hp["learning_rate"])
    metrics = {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}
    return {**state, "actor": actor, "opt_actor": opt_actor}, metrics, {"actor_noise": w, "actor_log_prob": log_prob}


def temperature_update(state, entropy, hp) -> tuple[dict, dict]:
    """One Adam step on log alpha against the gap between the actor's entropy and the target."""
    loss, grad = jax.value_and_grad(temperature_loss)(state["log_alpha"], entropy, hp["target_entropy"])
    log_alpha, opt_alpha = adam_step(grad, state["opt_alpha"], state["log_alpha"], hp["learning_rate"])
    return {**state, "log_alpha": log_alpha, "opt_alpha": opt_alpha}, {"temperature_loss": loss, "temperature": jnp.exp(log_alpha)}


def eval_rate(hp):
    """The evaluation actor's Polyak rate: `eval_average_tau`, or 1 (a copy of the live actor) when it is 0."""
    return jnp.where(hp["eval_average_tau"] > 0, hp["eval_average_tau"], 1.0)


def end_of_step(model: Model, state, rng, hp, aug_rng) -> dict:
    """Every update's last move: the target critic follows the critic and the evaluation actor the actor
    (Polyak), the key and the step counter advance, and the encoder's target and evaluation copy (if any)
    follow its encoder."""
    eval_tau = eval_rate(hp)
    return {
        **state,
        "target_critic": polyak(state["target_critic"], state["critic"], hp["tau"]),
        "eval_actor": polyak(state["eval_actor"], state["actor"], eval_tau),
        "rng": rng,
        "step": state["step"] + 1,
        **model.inputs.follow(state, hp["tau"], eval_tau, aug_rng),
    }
