"""How parameters move: Adam with a learning rate set at every step, and Polyak averaging of targets."""

from __future__ import annotations

import jax
import optax

# The learning rate lives in the optimiser's state, so each step can set it from the config.
# b1, b2, eps stay Python constants as in plain optax.adam (injected, they would be float32 arrays,
# and 1 - b2 would round differently).
ADAM = optax.inject_hyperparams(optax.adam, static_args=("b1", "b2", "eps", "eps_root"))(learning_rate=0.0)


def with_learning_rate(opt_state, learning_rate):
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": learning_rate})


def adam_init(params, learning_rate):
    return with_learning_rate(ADAM.init(params), learning_rate)


def adam_step(grads, opt_state, params, learning_rate):
    """(new params, new state): one Adam step at `learning_rate` (a traced scalar)."""
    updates, opt_state = ADAM.update(grads, with_learning_rate(opt_state, learning_rate), params)
    return optax.apply_updates(params, updates), opt_state


def polyak(target, online, tau: float):
    """target <- (1 - tau) target + tau online."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)
