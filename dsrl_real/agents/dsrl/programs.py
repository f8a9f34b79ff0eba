"""The agent's jitted programs, compiled once per structure (`AgentSpec.key`) and shared by every agent that
matches it, so rebuilding an agent (a resume, a test) does not recompile. `hp` arguments carry
`spec.hyperparams` as float32 scalars."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from .model import Model
from .na import na_sample, na_step
from .sac import sac_step
from .spec import AgentSpec

_PROGRAMS: dict[tuple, Programs] = {}


class Programs:
    def __init__(self, spec: AgentSpec):
        self.model = model = Model(spec)
        self.init = jax.jit(model.init_state)
        self.act = jax.jit(model.act, static_argnames="deterministic")
        self.apply_actor = jax.jit(model.actor.apply)
        self.apply_critic = jax.jit(model.critic.apply)
        if model.inputs.encoder is not None:
            self.encode = jax.jit(model.inputs.encode)
            self.act_encoded = jax.jit(self._act_encoded, static_argnames="deterministic")
        self.sac_step = jax.jit(functools.partial(sac_step, model))
        # NA: two programs each, with and without the distillation (`distill`, picked on the host).
        self.na_sample = jax.jit(functools.partial(na_sample, model), static_argnames="distill")
        self.na_step = jax.jit(functools.partial(na_step, model), static_argnames="distill")

    def _act_encoded(self, actor_params, encoder_params, features, images, key, magnitude, deterministic: bool):
        return self.model.act(actor_params, self.model.inputs.encode(encoder_params, features, images), key, magnitude, deterministic)

    def init_state(self, key, init_temperature: float, learning_rate: float) -> dict[str, Any]:
        state = self.init(key, jnp.float32(math.log(init_temperature)), jnp.float32(learning_rate))
        state.update(self.model.inputs.init(key, jnp.float32(learning_rate)))
        return state


def programs_for(spec: AgentSpec) -> Programs:
    if spec.key not in _PROGRAMS:
        _PROGRAMS[spec.key] = Programs(spec)
    return _PROGRAMS[spec.key]
