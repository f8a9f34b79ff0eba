"""Imitation pretraining of the diffusion base policy from recorded episodes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from ..config import PolicyConfig, PretrainConfig
from ..data.episodes import Episode
from .augmentation import augment
from .checkpoint import CheckpointError, read_checkpoint, save_policy
from .diffusion import DiffusionModel, DiffusionPolicy, Normalization, cosine_alpha_bars, diffusion_loss, init_params

TRAINING_CHECKPOINT = "training.msgpack"
POLICY_FILE = "policy.msgpack"


@dataclass
class ChunkDataset:
    """Every (observation, next H actions) pair of the episodes; chunks past the end repeat the last action."""

    obs: dict[str, np.ndarray]
    chunks: np.ndarray  # (N, H, A)

    def __len__(self) -> int:
        return len(self.chunks)

    def take(self, index: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {k: v[index] for k, v in self.obs.items()}, self.chunks[index]


def chunk_dataset(episodes: list[Episode], keys: list[str], chunk_size: int) -> ChunkDataset:
    obs: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    chunks = []
    for ep in episodes:
        if len(ep) == 0:
            continue
        missing = [k for k in keys if k not in ep.observations]
        if missing:
            raise KeyError(f"Episodes lack observation keys {missing}; record them (cameras/object_state) or change policy.*_keys.")
        steps = len(ep)
        index = np.minimum(np.arange(steps)[:, None] + np.arange(chunk_size)[None], steps - 1)
        chunks.append(ep.actions[index])
        for k in keys:
            obs[k].append(ep.observations[k][:steps])
    if not chunks:
        raise ValueError("The episodes hold no steps to learn from; record longer episodes.")
    return ChunkDataset({k: np.concatenate(v) for k, v in obs.items()}, np.concatenate(chunks).astype(np.float32))


def split_episodes(episodes: list[Episode], val_fraction: float) -> tuple[list[Episode], list[Episode]]:
    n_val = min(len(episodes) - 1, math.ceil(len(episodes) * val_fraction)) if val_fraction > 0 else 0
    return episodes[: len(episodes) - n_val], episodes[len(episodes) - n_val :]


class Pretrainer:
    """Holds the data, the optimiser and the training state; `run` trains with progress and checkpoints."""

    def __init__(self, policy_cfg: PolicyConfig, train_cfg: PretrainConfig, episodes: list[Episode], action_low, action_high):
        self.policy_cfg, self.cfg = policy_cfg, train_cfg
        keys = [*policy_cfg.vector_keys, *policy_cfg.image_keys]
        train_eps, val_eps = split_episodes(episodes, train_cfg.val_fraction)
        train = chunk_dataset(train_eps, keys, policy_cfg.chunk_size)
        self.action_dim = train.chunks.shape[-1]
        self.normalization = Normalization.fit(
            {k: train.obs[k] for k in policy_cfg.vector_keys}, train.chunks.reshape(-1, self.action_dim), action_low, action_high
        )
        self.input_shapes = {k: train.obs[k].shape[1:] for k in keys}
        self.train = self._normalize(train)
        self.val = self._normalize(chunk_dataset(val_eps, keys, policy_cfg.chunk_size)) if val_eps else None
        self.model = DiffusionModel(policy_cfg, self.action_dim)
        self.alpha_bars = jnp.asarray(cosine_alpha_bars(policy_cfg.train_diffusion_steps), jnp.float32)
        self.optimizer = optax.adamw(train_cfg.learning_rate, weight_decay=train_cfg.weight_decay)
        example = {k: v[:1] for k, v in self.train.obs.items()}
        params = init_params(policy_cfg, self.action_dim, example, jax.random.PRNGKey(train_cfg.seed))
        self.state: dict[str, Any] = {
            "params": params, "ema": params, "opt_state": self.optimizer.init(params),
            "step": 0, "rng": jax.random.PRNGKey(train_cfg.seed + 1),
        }
        self.history: list[dict[str, float]] = []
        # The training set lives on the device once (frames as uint8); each step gathers its batch there
        # from the indices alone. Copying a batch of two 128x128 cameras in took 35 ms a step on a 2-core CPU.
        self._device_train = jax.device_put((self.train.obs, self.train.chunks))
        self._step = jax.jit(self._train_step)
        self._loss = jax.jit(lambda p, o, a, r: diffusion_loss(self.model, p, o, a, self.alpha_bars, r))

    def _normalize(self, data: ChunkDataset) -> ChunkDataset:
        n = self.normalization
        obs = {k: ((v - n.vector_mean[k]) / n.vector_std[k]).astype(np.float32) if k in n.vector_mean else v for k, v in data.obs.items()}
        return ChunkDataset(obs, np.asarray(n.normalize_actions(data.chunks), np.float32))

    def _train_step(self, state, data, index):
        rng, sub = jax.random.split(state["rng"])
        obs, actions = {k: v[index] for k, v in data[0].items()}, data[1][index]
        obs.update(augment(obs, jax.random.fold_in(sub, 1), self.cfg.image_shift_pixels, self.policy_cfg.image_keys))
        loss, grads = jax.value_and_grad(lambda p: diffusion_loss(self.model, p, obs, actions, self.alpha_bars, sub))(state["params"])
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        decay = self.cfg.ema_decay
        ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, state["ema"], params)
        return {"params": params, "ema": ema, "opt_state": opt_state, "step": state["step"] + 1, "rng": rng}, loss

    def batch_indices(self, step: int) -> np.ndarray:
        """The batch of a given step depends only on (seed, step), so a resumed run sees the same data."""
        rng = np.random.default_rng([self.cfg.seed, step])
        return rng.integers(0, len(self.train), self.cfg.batch_size)

    def validation_loss(self) -> float:
        if self.val is None:
            return float("nan")
        index = np.arange(min(len(self.val), 2048))
        obs, actions = self.val.take(index)
        return float(self._loss(self.state["ema"], obs, actions, jax.random.PRNGKey(12345)))

    def policy(self) -> DiffusionPolicy:
        return DiffusionPolicy(self.policy_cfg, self.action_dim, self.normalization, self.state["ema"], self.input_shapes)

    # ---- checkpoints -----------------------------------------------------------------------------
    def save(self, out_dir: Path) -> None:
        training = {
            "state": serialization.to_state_dict(jax.device_get(self.state)),
            "history": self.history,
            "pretrain_config": {k: getattr(self.cfg, k) for k in ("seed", "batch_size", "learning_rate", "steps")},
        }
        save_policy(out_dir / TRAINING_CHECKPOINT, self.policy(), training=training)
        save_policy(out_dir / POLICY_FILE, self.policy())

    def restore(self, out_dir: Path) -> bool:
        path = out_dir / TRAINING_CHECKPOINT
        if not path.is_file():
            return False
        payload = read_checkpoint(path)
        if payload["config"] != {k: v for k, v in self.policy_cfg.__dict__.items()} or "training" not in payload:
            raise CheckpointError(f"'{path}' was trained with a different policy architecture; use a new pretrain.out_dir or the same policy.* settings.")
        self.state = serialization.from_state_dict(self.state, payload["training"]["state"])
        self.history = list(payload["training"]["history"])
        return True

    # ---- loop ------------------------------------------------------------------------------------
    def run(self, out_dir: str | Path, progress=None) -> DiffusionPolicy:
        out_dir = Path(out_dir)
        cfg = self.cfg
        task = progress.add_task("pretraining", total=cfg.steps, completed=int(self.state["step"])) if progress else None
        loss = float("nan")
        while int(self.state["step"]) < cfg.steps:
            step = int(self.state["step"])
            self.state, loss = self._step(self.state, self._device_train, self.batch_indices(step))
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.steps:
                record = {"step": step, "train_loss": float(loss), "val_loss": self.validation_loss()}
                self.history.append(record)
                if progress:
                    progress.console.log(f"step {step}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                self.save(out_dir)
            if progress:
                progress.update(task, completed=step, description=f"pretraining (loss {float(loss):.4f})")
        if not (out_dir / POLICY_FILE).is_file():
            self.save(out_dir)
        return self.policy()
