"""What a run observes. `pixels` is what a robot has (camera frames and proprioception) and the
default of every command; `state` adds the simulator's exact object positions, which no robot has,
and every result printed with it says so."""

from __future__ import annotations

from typing import Any, Literal

from .schema import Config, PolicyConfig

ObservationMode = Literal["pixels", "state"]

# Dotted overrides that select each mode, applied beneath a command's own overrides.
OBSERVATIONS: dict[str, list[str]] = {
    "pixels": ["env.object_state=false", "policy.vector_keys=[proprio]",
               "policy.image_keys=[third_person_image,wrist_image]"],
    "state": ["cameras=[]", "env.object_state=true", "policy.vector_keys=[proprio,object_state]", "policy.image_keys=[]"],
}
PRIVILEGED = "privileged, simulation only"


def observation_overrides(mode: str) -> list[str]:
    if mode not in OBSERVATIONS:
        raise ValueError(f"unknown observation mode {mode!r}; use one of {', '.join(OBSERVATIONS)}.")
    return list(OBSERVATIONS[mode])


def observation_label(cfg: Config, policy: Any = None) -> str:
    """What a run observes (the policy's keys, and object_state whenever the env adds it), in words, e.g.
    'pixels (third_person 64x64, wrist 64x64) + proprio' or 'state: proprio + object_state (privileged, simulation only)'.
    `policy`: the base policy that acts, whose own keys (a checkpoint's) count where it has a PolicyConfig."""
    p = policy.cfg if isinstance(getattr(policy, "cfg", None), PolicyConfig) else cfg.policy
    sizes = {f"{c.name}_image": f"{c.name} {c.width}x{c.height}" for c in cfg.cameras}
    images = [sizes.get(k, k) for k in p.image_keys]
    # The agent reads every vector the env gives, so env.object_state is named even where the policy does not read it.
    keys = [*p.vector_keys]
    if cfg.env.object_state and "object_state" not in keys:
        keys.append("object_state")
    vectors = [f"{k} ({PRIVILEGED})" if k == "object_state" else k for k in keys]
    if images:
        return f"pixels ({', '.join(images)}) + {' + '.join(vectors)}"
    return f"state: {' + '.join(vectors)}"
