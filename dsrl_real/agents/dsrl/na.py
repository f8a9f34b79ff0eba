"""DSRL-NA (noise aliasing, Wagenmaker et al. 2025, Sec. 4.2): one gradient step, in two jitted halves.

The base policy runs on the host between them: `na_sample` draws w' ~ pi(.|s') (and, on distillation
steps, fresh noise w), the caller denoises them into chunks a' = denoise(s', w') and a = denoise(s, w),
and `na_step` then takes, in order: Q^A's TD step on the executed chunks (so transitions without noise,
such as demos, train it), Q^W's distillation onto Q^A (on distillation steps), the actor step against
Q^W, the temperature step, the Polyak step of Q^A's target."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .losses import distillation_loss, q_action_td_loss
from .model import Model
from .optim import adam_step
from .updates import actor_update, backup_candidates, critic_update, end_of_step, soft_td_target, temperature_update

QW_KEYS = ("qw", "opt_qw")  # Q^W and its optimiser, left out of a step's outputs when it does not distil
SAMPLE_KEYS = ("actor", "rng", "encoder", "target_encoder", "aug_rng")  # what `na_sample` reads


def na_sample(model: Model, state, next_features, hp, distill: bool, next_images=None):
    """-> (advanced rng, w' ~ pi(.|s'), log pi(w'|s'), fresh noise or None). The fresh noise, drawn only
    if `distill`, is N(0, I) (the base sampler's own noise) clipped to the actor's box [-b, b], one draw
    per regression step. The key is split the same way either way. `state` holds only SAMPLE_KEYS (a
    whole state would be copied out again, ~2 ms per step on a CPU); with the encoder, `next_images`
    holds the next frames (prepared-batch keys) and `na_step` advances the augmentation stream."""
    rng, k_next, k_fresh = jax.random.split(state["rng"], 3)
    b = hp["action_magnitude"]
    if model.inputs.encoder is not None:
        next_features = model.inputs.for_training(state, {"next_features": next_features, **next_images}).next_actor
    next_w, next_log_prob = model.sample_latent(state["actor"], next_features, k_next, b)
    fresh = None
    if distill:
        fresh = jnp.clip(jax.random.normal(k_fresh, (model.distill_steps, next_features.shape[0], model.latent_dim)), -b, b)
    return rng, next_w, next_log_prob, fresh


def distill_q_w(model: Model, state, features, fresh_w, fresh_actions, lr):
    """Q^W_k(s, w) <- Q^A_k(s, denoise(s, w)), member-wise, one Adam step per fresh draw of w (S of them)."""
    targets = jax.vmap(lambda a: model.critic.apply(state["critic"], features, model.scale_actions(a)))(fresh_actions)
    targets = jax.lax.stop_gradient(targets)  # (S, K, B)

    def regress(carry, inputs):
        params, opt = carry
        w, target = inputs
        loss, grads = jax.value_and_grad(lambda p: distillation_loss(model.critic.apply(p, features, w), target))(params)
        return adam_step(grads, opt, params, lr), loss

    (qw, opt_qw), losses = jax.lax.scan(regress, (state["qw"], state["opt_qw"]), (fresh_w, targets))
    return {**state, "qw": qw, "opt_qw": opt_qw, "distill_loss": losses[-1]}, {"distill_noise": fresh_w, "distill_target": targets}


def na_step(model: Model, state, batch, next_w, next_log_prob, next_actions, fresh_w, fresh_actions, hp, distill: bool):
    """-> (state, metrics, info). `distill` False leaves Q^W alone (fresh_w, fresh_actions are None) and
    returns the state without QW_KEYS, which the caller keeps: passed through, they would be copied."""
    rng, k_actor = jax.random.split(state["rng"])
    alpha = jnp.exp(state["log_alpha"])
    lr = hp["learning_rate"]
    inputs = model.inputs.for_training(state, batch)

    next_q = model.critic.apply(state["target_critic"], inputs.next_critic, model.scale_actions(next_actions))
    next_q = backup_candidates(next_q, k_actor, hp)
    y = soft_td_target(batch, next_q, next_log_prob, alpha, hp)
    actions = model.scale_actions(batch["actions"])
    state, loss, q = critic_update(model, state, batch["features"], actions, lambda q: q_action_td_loss(q, y), lr, inputs.images)

    features = model.inputs.for_actor(state, batch["features"], inputs.images)  # Q^W and the actor: no gradient to the encoder
    distill_info = {}
    if distill:
        state, distill_info = distill_q_w(model, state, features, fresh_w, fresh_actions, lr)
    state, metrics, actor_info = actor_update(model, state, features, k_actor, state["qw"], hp)
    state, temperature_metrics = temperature_update(state, metrics["entropy"], hp)

    state = end_of_step(model, state, rng, hp, inputs.aug_rng)
    metrics.update(temperature_metrics, critic_loss=loss, q_mean=jnp.mean(jnp.mean(q, 0)), target_q_mean=jnp.mean(y),
                   distill_loss=state["distill_loss"], noise_fraction=jnp.mean(batch["has_noise"]))
    info = {"td_target": y, "next_noise": next_w, "next_log_prob": next_log_prob, "next_q": next_q, "alpha": alpha,
            **distill_info, **actor_info}
    if not distill:
        state = {k: v for k, v in state.items() if k not in QW_KEYS}
    return state, metrics, info
