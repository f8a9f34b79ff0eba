"""From the replay buffer's minibatches to the arrays the jitted steps take (host side, numpy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from .inputs import IMAGES, NEXT_IMAGES
from .spec import AgentSpec


def frames(spec: AgentSpec, source: Mapping[str, Any], lead: tuple[int, ...], what: str) -> dict[str, np.ndarray]:
    """The encoder's cameras from `source`, checked and left as they are (uint8, no copy)."""
    out = {}
    for k in spec.image_keys:
        if k not in source:
            raise KeyError(f"The agent's image encoder reads camera frames '{k}', which {what} lack (they have {sorted(source)}).")
        x = np.asarray(source[k])
        if x.dtype != np.uint8:
            raise ValueError(f"Camera frames '{k}' must be uint8 for the agent's image encoder (got {x.dtype}); "
                             "pass them as recorded.")
        if x.shape != (*lead, *spec.image_shapes[k]):
            raise ValueError(f"Camera frames '{k}' have shape {x.shape}; the agent expects {(*lead, *spec.image_shapes[k])}.")
        out[k] = x
    return out


def stack(batches) -> tuple[Mapping[str, Any], int | None]:
    """(batch, number of stacked steps or None for a single unstacked batch)."""
    if isinstance(batches, Mapping):
        return batches, (len(batches["features"]) if np.ndim(batches["features"]) == 3 else None)
    batches = list(batches)
    if not batches:
        raise ValueError("update() got no batches.")
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches), len(batches)


def prepare(spec: AgentSpec, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays the jitted steps need, flattened and cast (leading axes kept); obs dicts stay out,
    except the own encoder's camera frames, as `images/<key>` and `next_images/<key>`, uint8 as stored."""
    features = np.asarray(batch["features"], np.float32)
    if features.shape[-1] != spec.obs_dim:
        raise ValueError(f"Batch features have {features.shape[-1]} dims; the agent was built for {spec.obs_dim}.")
    lead = features.shape[:-1]

    def get(key, tail, required=True):
        if key not in batch:
            if required:
                raise KeyError(f"The agent's batch needs '{key}' (it has {sorted(batch)}).")
            return None
        return np.asarray(batch[key], np.float32).reshape(*lead, *tail)

    out = {
        "features": features,
        "next_features": get("next_features", (spec.obs_dim,)),
        "reward": get("reward", ()),
        "terminated": get("terminated", ()),
    }
    steps = get("bootstrap_steps", (), required=False)  # n-step returns (ReplayBuffer.sample); absent: 1
    out["bootstrap_steps"] = np.ones(lead, np.float32) if steps is None else steps
    noise = get("noise", (spec.latent_dim,), required=not spec.na)
    has_noise = get("has_noise", (), required=False)
    if noise is None:
        noise = np.zeros((*lead, spec.latent_dim), np.float32)
        has_noise = np.zeros(lead, np.float32)
    finite = np.all(np.isfinite(noise), axis=-1)
    has_noise = finite.astype(np.float32) if has_noise is None else has_noise * finite
    out["noise"] = np.where(has_noise[..., None] > 0, np.nan_to_num(noise), 0.0).astype(np.float32)
    out["has_noise"] = has_noise.astype(np.float32)
    if spec.na:
        out["actions"] = get("actions", (spec.action_dim,))
    for prefix, source in ((IMAGES, "obs"), (NEXT_IMAGES, "next_obs")) if spec.image_keys else ():
        if source not in batch:
            raise KeyError(f"The agent's image encoder needs the camera frames '{source}' in the batch "
                           "(sample with include_obs=True).")
        out.update({prefix + k: v for k, v in frames(spec, batch[source], lead, f"the batch's '{source}'").items()})
    return out
