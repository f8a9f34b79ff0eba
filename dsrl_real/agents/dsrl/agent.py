"""DSRLAgent: acting, updating and saving around the jitted programs (`programs.py`); see docs/agent.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...config import AgentConfig
from . import checkpoint
from .batches import frames, prepare, stack
from .inputs import NEXT_IMAGES
from .na import SAMPLE_KEYS
from .programs import programs_for
from .spec import agent_spec, distill_every, hyperparams

Denoise = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]
ACTING_KEYS = ("actor", "encoder", "eval_actor", "eval_encoder")  # the state entries acting reads


class DSRLAgent:
    """SAC (`cfg.algorithm` dsrl_sac) or noise aliasing (dsrl_na) over the sampler's noise w of shape
    `noise_shape` (H, A), flattened to D = H*A independent latent dims in [-b, b], b = `cfg.action_magnitude`.

    Reads (B, obs_dim) feature vectors and, with `image_shapes`, those cameras' uint8 frames through its
    own image encoder. NA: `action_shape` is the executed chunk's (default `noise_shape`) and
    `action_bounds` rescale it to [-1, 1] for Q^A."""

    def __init__(
        self,
        cfg: AgentConfig,
        obs_dim: int,
        noise_shape: tuple[int, int],
        action_shape: tuple[int, int] | None = None,
        action_bounds: tuple[Any, Any] | None = None,
        image_shapes: Mapping[str, tuple[int, int, int]] | None = None,
    ):
        self.spec = agent_spec(cfg, obs_dim, noise_shape, action_shape, action_bounds, image_shapes)
        self.programs = programs_for(self.spec)
        self.cfg = cfg
        s = self.spec
        self.obs_dim, self.noise_shape, self.action_shape, self.action_bounds = s.obs_dim, s.noise_shape, s.action_shape, s.action_bounds
        self.image_shapes, self.image_keys = s.image_shapes, s.image_keys
        self.latent_dim, self.action_dim, self.na = s.latent_dim, s.action_dim, s.na
        self.last_info: dict[str, np.ndarray] = {}
        self._state = self.programs.init_state(jax.random.PRNGKey(cfg.seed), cfg.init_temperature, cfg.learning_rate)

    # -- acting -----------------------------------------------------------------------------------
    def act(self, features, deterministic: bool = False, rng=None, images: Mapping[str, Any] | None = None) -> np.ndarray:
        """Noise (B, H, A) in [-b, b] for features (B, obs_dim); a single (obs_dim,) gives (H, A).

        With the own encoder, `images` holds each camera's uint8 frames, (B, H, W, C) (or (H, W, C)
        beside single features), never augmented here; `features` may also be the mapping
        {"features": ..., "images": {...}} (what `FeatureFn.agent_input` builds).
        deterministic: magnitude * tanh(mean) of the evaluation actor (evaluation; the live actor unless
        `agent.eval_average_tau` averages it). rng: None uses and advances the agent's
        own stream (saved in checkpoints); an int seeds a fresh key; a jax key is used as is."""
        if isinstance(features, Mapping):
            features, images = features["features"], features.get("images")
        features = np.asarray(features, np.float32)
        single = features.ndim == 1
        if single:
            features = features[None]
        if features.shape[-1] != self.obs_dim:
            raise ValueError(f"Agent features have {features.shape[-1]} dims; the agent was built for {self.obs_dim}.")
        camera_frames = None
        if self.image_keys:
            images = images if images is not None else {}
            if single:
                images = {k: np.asarray(v)[None] for k, v in images.items()}
            camera_frames = frames(self.spec, images, features.shape[:-1], "act()'s images")
        elif images:
            raise ValueError("This agent has no image encoder (agent.features=policy_embedding, or no cameras); pass the feature vector only.")
        if rng is None:
            key, self._state["act_rng"] = tuple(jax.random.split(self._state["act_rng"]))
        elif isinstance(rng, (int, np.integer)):
            key = jax.random.PRNGKey(int(rng))
        else:
            key = rng
        magnitude = jnp.float32(self.cfg.action_magnitude)
        actor, encoder = ("eval_actor", "eval_encoder") if deterministic else ("actor", "encoder")
        if camera_frames is None:
            w = self.programs.act(self._state[actor], jnp.asarray(features), key, magnitude, deterministic=bool(deterministic))
        else:
            w = self.programs.act_encoded(self._state[actor], self._state[encoder], jnp.asarray(features), camera_frames, key,
                                          magnitude, deterministic=bool(deterministic))
        w = np.asarray(w)
        return w[0] if single else w

    # -- acting parameters (a learner in another process sends these) -------------------------------
    def acting_params(self) -> dict[str, Any]:
        """Only what `act` reads, as numpy arrays: the live and evaluation actors, and with the own encoder both encoders."""
        return {k: jax.device_get(self._state[k]) for k in ACTING_KEYS if k in self._state}

    def load_acting_params(self, params: Mapping[str, Any]) -> None:
        """Act with `params` (from `acting_params` of an agent of the same structure); the rest of the
        state, the acting stream included, stays as it is."""
        unknown = set(params) - set(ACTING_KEYS)
        if unknown:
            raise ValueError(f"Acting parameters hold only {', '.join(ACTING_KEYS)}; got {sorted(unknown)}.")
        self._state = {**self._state, **{k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in params.items()}}

    @property
    def act_stream(self) -> np.ndarray:
        """The acting random stream (`act` with rng=None draws from it and advances it)."""
        return np.asarray(jax.device_get(self._state["act_rng"]))

    # -- inspection --------------------------------------------------------------------------------
    # With the own encoder, pass the cameras' uint8 frames as `images` (no augmentation); `target`
    # uses the target encoder with the target critic.
    def _net_features(self, features, images, target: bool = False):
        """The networks' input: the features, then (own encoder) the online or target encoder's output."""
        features = np.asarray(features, np.float32)
        if not self.image_keys:
            return jnp.asarray(features)
        camera_frames = frames(self.spec, images if images is not None else {}, features.shape[:-1], "the images")
        return self.programs.encode(self._state["target_encoder" if target else "encoder"], jnp.asarray(features), camera_frames)

    def actor_distribution(self, features, images=None) -> tuple[np.ndarray, np.ndarray]:
        """The pre-tanh Gaussian: (mean (B, D), log_std (B, D))."""
        mean, log_std = self.programs.apply_actor(self._state["actor"], self._net_features(features, images))
        return np.asarray(mean), np.asarray(log_std)

    def q_values(self, features, latent_or_action, target: bool = False, images=None) -> np.ndarray:
        """(K, B): Q(s, w) for SAC, Q^A(s, a) (a in action units) for NA."""
        x = np.asarray(latent_or_action, np.float32).reshape(len(features), -1)
        if self.na:
            x = np.asarray(self.programs.model.scale_actions(jnp.asarray(x)))
        params = self._state["target_critic" if target else "critic"]
        return np.asarray(self.programs.apply_critic(params, self._net_features(features, images, target), jnp.asarray(x)))

    def qw_values(self, features, noise, images=None) -> np.ndarray:
        """(K, B): NA's Q^W(s, w)."""
        if not self.na:
            raise ValueError("qw_values exists only for dsrl_na.")
        w = np.asarray(noise, np.float32).reshape(len(features), -1)
        return np.asarray(self.programs.apply_critic(self._state["qw"], self._net_features(features, images), jnp.asarray(w)))

    @property
    def temperature(self) -> float:
        return float(jnp.exp(self._state["log_alpha"]))

    @property
    def step(self) -> int:
        """The number of gradient steps taken."""
        return int(self._state["step"])

    # -- update ----------------------------------------------------------------------------------------
    def update(self, batches, denoise: Denoise | None = None) -> dict[str, float]:
        """One gradient step per minibatch in `batches`: one batch dict, a list of them, or a dict whose
        arrays have a leading (U, B) axis. Returns the mean of each metric over the steps, plus `steps`
        (the total gradient steps so far). DSRL-NA needs `denoise(obs_dict, noise (B, H, A)) -> chunks
        (B, *action_shape)` (e.g. `base_policy.sample`) and the batch's `obs` and `next_obs`."""
        batch, steps = stack(batches)
        prepared = prepare(self.spec, batch)
        hp = hyperparams(self.cfg)
        if self.na:
            all_metrics, info = self._na_steps(batch, prepared, steps, denoise, hp)
        else:
            all_metrics = []
            for i in range(1 if steps is None else steps):
                step_batch = prepared if steps is None else {k: v[i] for k, v in prepared.items()}
                self._state, m, info = self.programs.sac_step(self._state, step_batch, hp)
                all_metrics.append(m)
        metrics = jax.tree_util.tree_map(lambda *xs: np.mean(np.stack(xs)), *jax.device_get(all_metrics))
        self.last_info = {k: np.asarray(v) for k, v in info.items()}
        out = {k: float(v) for k, v in metrics.items()}
        out["steps"] = self.step
        return out

    def _na_steps(self, batch, prepared, steps, denoise, hp):
        """NA's host loop: per step, sample on the device, denoise on the host, then the gradient step.
        Q^W is distilled on the steps whose global index is a multiple of `cfg.na_distill_every`, so
        which steps distil does not depend on how steps are grouped into update() calls or on a resume."""
        if denoise is None:
            raise ValueError("dsrl_na needs `denoise(obs, noise) -> chunks` (e.g. base_policy.sample) in update().")
        if "obs" not in batch or "next_obs" not in batch:
            raise KeyError("dsrl_na needs the policy observations 'obs' and 'next_obs' in the batch (sample with include_obs=True).")
        every, first = distill_every(self.cfg), self.step
        all_metrics, info = [], {}
        for i in range(1 if steps is None else steps):
            pick = (lambda x: x) if steps is None else (lambda x: x[i])  # noqa: E731
            step_batch = {k: pick(v) for k, v in prepared.items()}
            next_obs = {k: pick(np.asarray(v)) for k, v in batch["next_obs"].items()}
            distill = (first + i) % every == 0
            next_images = {k: v for k, v in step_batch.items() if k.startswith(NEXT_IMAGES)} if self.image_keys else None
            sample_state = {k: self._state[k] for k in SAMPLE_KEYS if k in self._state}
            rng, next_w, next_log_prob, fresh = self.programs.na_sample(
                sample_state, step_batch["next_features"], hp, distill=distill, next_images=next_images
            )
            self._state = {**self._state, "rng": rng}
            n = len(step_batch["features"])
            next_actions = self._denoise(denoise, next_obs, next_w, n)
            fresh_actions = None
            if distill:
                obs = {k: pick(np.asarray(v)) for k, v in batch["obs"].items()}
                fresh_actions = np.stack([self._denoise(denoise, obs, w, n) for w in np.asarray(fresh)])
            new_state, m, info = self.programs.na_step(
                self._state, step_batch, next_w, next_log_prob, next_actions, fresh, fresh_actions, hp, distill=distill
            )
            self._state = {**self._state, **new_state}  # without a distillation Q^W is not returned
            all_metrics.append(m)
        return all_metrics, info

    def _denoise(self, denoise: Denoise, obs, flat_noise, n: int) -> np.ndarray:
        chunks = np.asarray(denoise(obs, np.asarray(flat_noise).reshape(n, *self.noise_shape)), np.float32)
        if chunks.shape != (n, *self.action_shape):
            raise ValueError(f"denoise returned chunks of shape {chunks.shape}; expected {(n, *self.action_shape)}.")
        return chunks.reshape(n, self.action_dim)

    # -- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: params, targets, optimiser states, temperature,
        both rng streams, step counter; plus the construction arguments."""
        return checkpoint.state_dict(self.cfg, self.spec, self._state)

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        checkpoint.check_compatible(self.cfg, self.spec, d)
        self._state = checkpoint.restore_state(d, self._state, self.na)

    def save(self, path: str | Path) -> Path:
        return checkpoint.write(path, self.state_dict())

    def load(self, path: str | Path) -> None:
        self.load_state_dict(checkpoint.read(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "DSRLAgent":
        d = checkpoint.read(path)
        agent = cls(*checkpoint.construction_args(d))
        agent.load_state_dict(d)
        return agent
