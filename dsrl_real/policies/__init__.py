"""Base policies: the protocol DSRL steers, our diffusion policy, and the adapter point for others."""

from __future__ import annotations

import importlib

from ..config import ConfigError, PolicyConfig
from .base import BasePolicy
from .checkpoint import CheckpointError, load_policy


def load_base_policy(cfg: PolicyConfig) -> BasePolicy:
    """The policy `policy.external` names ("module:factory", called with the PolicyConfig), else
    the diffusion checkpoint at `policy.checkpoint`."""
    if cfg.external:
        module_name, _, attr = cfg.external.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"policy.external='{cfg.external}' cannot be imported ({err}); give 'package.module:factory'.") from err
        policy = factory(cfg)
        if not isinstance(policy, BasePolicy):
            raise ConfigError(
                f"policy.external='{cfg.external}' returned a {type(policy).__name__}, which lacks the BasePolicy "
                "members chunk_size, action_dim, noise_shape, sample and embed."
            )
        return policy
    if not cfg.checkpoint:
        raise ConfigError("No base policy given; set policy.checkpoint to a pretrained policy file or policy.external.")
    try:
        return load_policy(cfg.checkpoint)
    except CheckpointError as err:
        raise ConfigError(str(err)) from err
