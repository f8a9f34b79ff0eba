"""The actor's policy: a diagonal Gaussian squashed by tanh and scaled to (-b, b) (SAC, Haarnoja et al. 2018, App. C)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _log_one_minus_tanh_sq(u):
    """log(1 - tanh(u)^2), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_sample(mean, log_std, eps, magnitude: float):
    """w = magnitude * tanh(mean + exp(log_std) * eps) and log pi(w), summed over the last axis.

    log pi(w) = log N(u; mean, std) - sum log(1 - tanh(u)^2) - D log(magnitude)."""
    u = mean + jnp.exp(log_std) * eps
    log_normal = jnp.sum(-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)
    log_det = jnp.sum(_log_one_minus_tanh_sq(u), axis=-1) + u.shape[-1] * jnp.log(magnitude)
    return magnitude * jnp.tanh(u), log_normal - log_det


def tanh_gaussian_log_prob(mean, log_std, w, magnitude: float):
    """log pi(w) for a given squashed sample w in (-magnitude, magnitude)."""
    u = jnp.arctanh(jnp.clip(w / magnitude, -1 + 1e-6, 1 - 1e-6))
    eps = (u - mean) * jnp.exp(-log_std)
    return tanh_gaussian_sample(mean, log_std, eps, magnitude)[1]
