"""SAC's and DSRL-NA's targets and losses as pure functions of Q-values and log-probabilities.

Q-values of an ensemble are (K, B); `how` picks the ensemble reduction: "min", "mean", or a traced flag
(1.0 = mean) so that both share one compiled program."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reduce_ensemble(q, how):
    """min or mean over the ensemble axis."""
    if isinstance(how, str):
        return jnp.min(q, axis=0) if how == "min" else jnp.mean(q, axis=0)
    return jnp.where(how > 0.5, jnp.mean(q, axis=0), jnp.min(q, axis=0))


def td_target(reward, terminated, next_q, next_log_prob, alpha, gamma, backup):
    """y = r + gamma (1 - terminated) (backup_k Q_k(s', w') - alpha log pi(w'|s')); next_q is (K, B)."""
    q = reduce_ensemble(next_q, backup)
    return reward + gamma * (1.0 - terminated) * (q - alpha * next_log_prob)


def backup_subset(next_q, key, size):
    """REDQ's target ensemble: next_q (K, B) with all but a random `size` of the K critics set to +inf,
    so that a min backup takes the min over that subset; size <= 0 (or >= K) keeps every critic."""
    k = next_q.shape[0]
    keep = (jax.random.permutation(key, k) < size) | (size <= 0)
    return jnp.where(keep[:, None], next_q, jnp.inf)


def critic_loss(q, y, mask):
    """sum_k of the mean over the rows with mask 1 of (Q_k(s, w) - y)^2 (rows without noise carry no w)."""
    per_row = jnp.sum((q - y[None]) ** 2, axis=0)
    return jnp.sum(mask * per_row) / jnp.maximum(jnp.sum(mask), 1.0)


def q_action_td_loss(q, y):
    """DSRL-NA's Q^A(s, a) loss: the critic loss over every row, since the executed chunk a needs no noise."""
    return critic_loss(q, y, jnp.ones_like(y))


def actor_loss(log_prob, q, alpha, objective):
    """E[alpha log pi(w|s) - reduce_k Q_k(s, w)], w ~ pi(.|s) reparameterised."""
    return jnp.mean(alpha * log_prob - reduce_ensemble(q, objective))


def temperature_loss(log_alpha, entropy, target_entropy):
    """log alpha (H - target): alpha falls when the policy is more random than the target."""
    return log_alpha * (entropy - target_entropy)


def distillation_loss(qw, target):
    """DSRL-NA's Q^W(s, w) loss: member-wise squared error to Q^A(s, denoise(s, w)), summed over the ensemble."""
    return jnp.mean(jnp.sum((qw - target) ** 2, axis=0))
