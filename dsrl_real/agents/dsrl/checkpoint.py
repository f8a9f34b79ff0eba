"""The agent's checkpoint: format `dsrl_real.dsrl_agent.v1`, one msgpack file of the construction arguments
and the state. Adam states are stored as optax.scale_by_adam's (count, mu, nu), as they were before the
learning rate moved into the optimiser's state; the learning rate itself comes from the config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from ...config import AgentConfig
from ...storage import read_msgpack, write_atomic
from .spec import AgentSpec

FORMAT = "dsrl_real.dsrl_agent.v1"
EVAL_COPIES = (("actor", "eval_actor"), ("encoder", "eval_encoder"))  # (live, averaged for evaluation)


def _is_adam(x) -> bool:
    return hasattr(x, "hyperparams") and hasattr(x, "inner_state")


def saved_layout(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state as the file holds it: each Adam state as its moments (count, mu, nu)."""
    return {k: v.inner_state[0] if _is_adam(v) else v for k, v in state.items()}


def live_layout(saved: Mapping[str, Any], like: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `saved_layout`; the learning rates are those of `like`."""
    return {k: like[k]._replace(count=v.count, inner_state=(v, *like[k].inner_state[1:])) if _is_adam(like[k]) else v
            for k, v in saved.items()}


def describe(cfg: AgentConfig, spec: AgentSpec) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": dataclasses.asdict(cfg),
        "obs_dim": spec.obs_dim,
        "noise_shape": list(spec.noise_shape),
        "action_shape": list(spec.action_shape),
        "image_shapes": {k: list(v) for k, v in spec.image_shapes.items()},
    }


def state_dict(cfg: AgentConfig, spec: AgentSpec, state: Mapping[str, Any]) -> dict[str, Any]:
    d = describe(cfg, spec)
    d["action_bounds"] = {} if spec.action_bounds is None else {"low": spec.action_bounds[0], "high": spec.action_bounds[1]}
    saved = saved_layout(state)
    if not cfg.eval_average_tau:  # evaluation acts with the live actor: the file keeps the layout it had before averaging
        saved = {k: v for k, v in saved.items() if k not in dict(EVAL_COPIES).values()}
    d["state"] = serialization.to_state_dict(jax.tree_util.tree_map(np.array, jax.device_get(saved)))
    return d


def check_compatible(cfg: AgentConfig, spec: AgentSpec, d: Mapping[str, Any]) -> None:
    """Raises, in one sentence, if the checkpoint `d` was written by an agent of another structure."""
    if d.get("format") != FORMAT:
        raise ValueError(f"Not a DSRL agent state (format {d.get('format')!r}, expected {FORMAT!r}).")
    mine, theirs = describe(cfg, spec), d
    theirs_mode = theirs["config"].get("features", "policy_embedding")
    if theirs_mode != cfg.features:
        raise ValueError(f"The agent checkpoint was trained with agent.features={theirs_mode}, but the config says "
                         f"{cfg.features}; set agent.features={theirs_mode} to continue it or start a new run.")
    theirs_images = {k: list(v) for k, v in (theirs.get("image_shapes") or {}).items()}
    if theirs_images != mine["image_shapes"]:
        raise ValueError(f"The agent checkpoint's image encoder reads cameras {theirs_images or 'none'}, but this agent "
                         f"reads {mine['image_shapes'] or 'none'}; use the cameras and agent.encoder_image_keys of the run that wrote it.")
    for key in ("obs_dim", "noise_shape", "action_shape"):
        if list(np.atleast_1d(theirs[key])) != list(np.atleast_1d(mine[key])):
            raise ValueError(f"The agent checkpoint has {key}={theirs[key]}, but this agent has {mine[key]}; build the agent to match.")
    encoder_keys = ("encoder_channels", "encoder_dim") if spec.image_keys else ()
    for key in ("algorithm", "hidden_dim", "num_layers", "num_critics", "activation", *encoder_keys):
        if _plain(theirs["config"][key]) != _plain(mine["config"][key]):
            raise ValueError(f"The agent checkpoint has agent.{key}={theirs['config'][key]!r}, but the config says {mine['config'][key]!r}.")


def restore_state(d: Mapping[str, Any], like: Mapping[str, Any], na: bool) -> dict[str, Any]:
    """The checkpoint's state in the structure and dtypes of the agent's state `like`."""
    state = d["state"]
    if na and "distill_loss" not in state:  # written before na_distill_every existed
        state = {**state, "distill_loss": np.float32(np.nan)}
    for live, averaged in EVAL_COPIES:  # written without averaging (or before it existed): evaluation acts live
        if live in state and averaged not in state:
            state = {**state, averaged: state[live]}
    template = saved_layout(like)
    restored = serialization.from_state_dict(template, state)
    restored = jax.tree_util.tree_map(lambda t, x: jnp.asarray(x, dtype=jnp.asarray(t).dtype), template, restored)
    return live_layout(restored, like)


def construction_args(d: Mapping[str, Any]) -> tuple:
    """(cfg, obs_dim, noise_shape, action_shape, action_bounds, image_shapes) of the agent that wrote `d`."""
    known = {f.name for f in dataclasses.fields(AgentConfig)}
    cfg = AgentConfig(**{k: v for k, v in d["config"].items() if k in known})
    bounds = d.get("action_bounds") or None
    bounds = None if not bounds else (np.asarray(bounds["low"]), np.asarray(bounds["high"]))
    images = {k: tuple(v) for k, v in (d.get("image_shapes") or {}).items()}
    return cfg, int(d["obs_dim"]), tuple(d["noise_shape"]), tuple(d["action_shape"]), bounds, images


def read(path: str | Path) -> dict[str, Any]:
    return read_msgpack(path, FORMAT, "DSRL agent checkpoint", "start a new run")


def write(path: str | Path, d: Mapping[str, Any]) -> Path:
    path = Path(path)
    write_atomic(path, serialization.msgpack_serialize(dict(d)))
    return path


def _plain(value):
    """Config values as compared across a checkpoint (lists may come back as tuples or arrays)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple, np.ndarray)) else value
