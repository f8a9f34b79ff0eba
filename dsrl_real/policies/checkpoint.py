"""Policy checkpoints: one msgpack file carrying the parameters, the architecture config, the
normalisation statistics and (optionally) the training state to resume from. Written atomically,
with a sha256 of its contents inside, so a flipped bit is refused with a sentence naming the file
(files saved before the checksum existed still load)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
from flax import serialization

from ..config import PolicyConfig
from ..errors import UserError
from ..storage import read_msgpack, write_checked_msgpack
from .diffusion import DiffusionPolicy, Normalization

FORMAT = "dsrl_real.diffusion_policy.v1"


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, corrupt or does not fit; the message says what to do."""


def save_policy(path: str | Path, policy: DiffusionPolicy, training: dict[str, Any] | None = None) -> Path:
    payload = {
        "format": FORMAT,
        "config": dataclasses.asdict(policy.cfg),
        "action_dim": policy.action_dim,
        "input_shapes": {k: list(v) for k, v in policy.input_shapes.items()},
        "normalization": policy.normalization.to_dict(),
        "params": jax.device_get(serialization.to_state_dict(policy.params)),
    }
    if training is not None:
        payload["training"] = jax.device_get(training)
    path = Path(path)
    write_checked_msgpack(path, payload)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    return read_msgpack(path, FORMAT, "dsrl_real policy checkpoint", "pretrain one with `dsrl-real pretrain`", CheckpointError)


def load_policy(path: str | Path) -> DiffusionPolicy:
    payload = read_checkpoint(path)
    cfg = PolicyConfig(**{"conv_stem": 2, **payload["config"]})  # files from before conv_stem existed have stride-2 stems
    normalization = Normalization.from_dict(payload["normalization"])
    shapes = {k: tuple(int(x) for x in v) for k, v in payload.get("input_shapes", {}).items()}
    return DiffusionPolicy(cfg, int(payload["action_dim"]), normalization, payload["params"], shapes)


def check_fits(policy, observation_space, action_space, source: str = "the policy") -> None:
    """Raise one clear sentence if the policy's inputs or outputs do not fit the environment."""
    if policy.action_dim != action_space.shape[0]:
        raise CheckpointError(f"{source} outputs {policy.action_dim}-D actions but the robot takes {action_space.shape[0]}-D actions.")
    spaces = observation_space.spaces
    for key in (*policy.cfg.vector_keys, *policy.cfg.image_keys):
        if key not in spaces:
            raise CheckpointError(f"{source} needs observation '{key}', which this environment lacks (it has {sorted(spaces)}).")
        trained = policy.input_shapes.get(key)
        if trained is not None and tuple(spaces[key].shape) != trained:
            raise CheckpointError(f"{source} was trained on '{key}' of shape {trained}, but the environment gives {tuple(spaces[key].shape)}.")
