"""`dsrl-real bench base-policy`: success of the diffusion base policy pretrained by the default and a capable recipe."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..config import load_config
from ..config.observations import observation_label, observation_overrides
from ..policies.pipeline import base_success, pretrain_from_demos

CAPABLE_RECIPE = ["demos.episodes=200", "demos.expert_noise=0.1", "pretrain.steps=10000"]


def _pretrain_and_evaluate(overrides: list[str], work_dir: Path, episodes: int) -> dict:
    cfg = load_config(overrides=overrides)
    policy, trainer, seconds = pretrain_from_demos(cfg, work_dir)
    return {
        **base_success(cfg, policy, episodes), "observations": observation_label(cfg),
        "demos": cfg.demos.episodes, "expert_noise": cfg.demos.expert_noise, "pretrain_steps": cfg.pretrain.steps,
        "collect_and_pretrain_s": round(seconds, 1), "final_val_loss": round(trainer.history[-1]["val_loss"], 4),
    }


def bench_base_policy(episodes: int = 50, obs: str = "pixels") -> dict:
    """The default recipe should succeed sometimes (5-40%); more and cleaner demos should reach >= 80%."""
    mode = observation_overrides(obs)
    with tempfile.TemporaryDirectory() as tmp:
        default = _pretrain_and_evaluate(mode, Path(tmp) / "default", episodes)
        capable = _pretrain_and_evaluate([*mode, *CAPABLE_RECIPE], Path(tmp) / "capable", episodes)
    return {
        "observations": default["observations"],
        "base_success_rate": default["success_rate"],
        "capable_success_rate": capable["success_rate"],
        "episodes": episodes,
        "task": "monkey",
        "default_recipe": default,
        "capable_recipe": capable,
    }
