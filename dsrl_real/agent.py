"""The DSRL agent: SAC whose action is the initial noise of a frozen diffusion policy's sampler.

Pure JAX/Flax/Optax. The agent sees a flat float feature vector per observation (`obs_dim`; the
caller builds it, e.g. proprio + the base policy's frozen `embed`) and chooses the sampler's FULL
noise tensor w of shape `noise_shape` = (H, A), flattened to D = H*A independent latent dims (never
one vector repeated over the chunk). The noise lies in [-b, b]^D, b = `cfg.action_magnitude`.

Own image encoder (`image_shapes` given, which needs `cfg.features == "observation"`): the agent
also reads camera frames, {key: (H, W, C) uint8}, through its own `encoders.ImageEncoder` (per camera
stride-2 convs `cfg.encoder_channels`, then Linear -> LayerNorm -> tanh to `cfg.encoder_dim`), and
every network's input is [features, encoder(frames)]. Pixel SAC as in SAC-AE / DrQ: one encoder is
shared by actor and critics, and only the critic's TD loss trains it (own Adam state, the critic's
learning rate); the actor, the temperature and the next action w' ~ pi(.|s') read its output with
the gradient stopped; the target critic reads a target encoder that follows the encoder by Polyak
with the same tau. DSRL-NA: Q^A's TD loss trains the encoder, and Q^W (distillation and the actor's
objective) reads the same encoder's output with the gradient stopped, so Q^W and Q^A judge the same
features and Q^W's regression cannot pull the representation away from the TD-trained one.
Training only (never in `act` or the inspection methods): DrQ's random shift (`cfg.image_augmentation`
"shift": each frame moved by up to +-`cfg.image_shift_pixels` px, border replicated; "none" turns it
off), drawn independently for s and s' per gradient step from a separate stream `aug_rng` in the
state. Frames stay uint8 on the host (the replay buffer's own arrays) and become float inside the
jitted programs. The vector path (no `image_shapes`) is untouched: same programs, same math, same
random streams.

Algorithms (`cfg.algorithm`):

* ``dsrl_sac`` -- plain SAC on the latent MDP. Actor: tanh-squashed diagonal Gaussian scaled to
  +-b (log-prob with the tanh and scale Jacobian). Critic: an ensemble of `cfg.num_critics`
  Q(s, w) with stacked (vmapped) parameters and Polyak targets (`cfg.tau`). TD target

      y = r + gamma * (1 - terminated) * (backup_k Q_target_k(s', w') - alpha * log pi(w'|s')),
      w' ~ pi(.|s'), backup = min or mean over the ensemble (`cfg.critic_backup`).

  With n-step batches (`cfg.n_step`, `ReplayBuffer.sample(n_step=...)`) r is the discounted reward
  sum over the next `bootstrap_steps` chunk steps, s' the observation after them, and gamma becomes
  gamma ** bootstrap_steps. Only `terminated` cuts the bootstrap: a time-limit truncation bootstraps. Rows without noise
  (demos, `has_noise` False) carry no latent action and are masked out of the critic loss (they
  still serve as states for the actor). Temperature: log alpha, loss
  log_alpha * (entropy - cfg.target_entropy) with entropy = -mean log pi (so alpha falls when the
  policy is more random than the target). Per gradient step, in order: critic step (with the
  pre-step actor and alpha), actor step (against the just-updated critic), temperature step,
  Polyak update of the target critic.

* ``dsrl_na`` -- noise aliasing. Q^A(s, a) over the executed chunk a (flattened H*A, in action
  units; optionally rescaled to [-1, 1] by `action_bounds`) is trained by TD with
  a' = denoise(s', w'), w' ~ pi(.|s'), using only (s, a, r, s', terminated): it learns from
  transitions that have no noise (demos, teleop). The same SAC soft target (entropy of w') is
  used. Q^W(s, w) (an ensemble of the same size) is distilled member-wise onto Q^A:
  Q^W_k(s, w) <- Q^A_k(s, denoise(s, w)) for fresh w, `cfg.na_distill_steps` regression steps,
  each on the minibatch's observations with new noise. Q^W is distilled only on the gradient steps
  whose global index (`agent.step` before the step) is a multiple of `cfg.na_distill_every`
  (1: every step), so which steps distil does not depend on how steps are grouped into `update`
  calls or on a resume. The actor maximises backup_k Q^W_k(s, w) - alpha log pi(w|s) (the current
  Q^W, however old its last distillation). Per gradient step, in order: Q^A's TD step, the
  distillation (on distillation steps), actor step, temperature step, Polyak update of Q^A's target.

  Fresh distillation noise: w ~ N(0, I) clipped to [-b, b]. N(0, I) is the base sampler's own
  noise distribution, so Q^W is accurate where the unsteered policy acts; the clip keeps it on the
  box the actor can reach (the released code ignored the magnitude here). With b = 1.5 about 13%
  of the coordinates land on the edge, with b = 2.5 about 1%.

  The base policy is an arbitrary numpy `BasePolicy`, so chunks are computed on the host between
  jitted steps: `update(batches, denoise)` takes `denoise(obs: dict[str, ndarray], noise (B, H, A))
  -> chunks (B, H, A)`; `base_policy.sample` has exactly that signature. Per gradient step it is
  called once on `next_obs` (for a') and, on distillation steps only, `na_distill_steps` times on
  `obs` (for the fresh w): 1 + na_distill_steps / na_distill_every calls per step on average. On
  the other steps the fresh noise is neither drawn nor denoised and the distillation is not
  compiled into the step (a second jitted program, chosen on the host); the random stream is split
  the same way on both kinds of step, so the actor's samples do not depend on `na_distill_every`.

Action-space SAC baseline: the same class with the env action as the "latent", e.g.
``DSRLAgent(dataclasses.replace(cfg, action_magnitude=1.0), obs_dim, noise_shape=(1, 7))``:
`act` returns (B, 1, 7) in [-1, 1], which the caller maps to the action bounds
(low + (w + 1) / 2 * (high - low)) and stores, in [-1, 1] units, as the `noise` of the transition.

Public API::

    agent = DSRLAgent(cfg: AgentConfig, obs_dim: int, noise_shape: tuple[int, int],
                      action_shape: tuple[int, int] | None = None,   # NA: executed chunk, default noise_shape
                      action_bounds: tuple[array, array] | None = None,  # NA: Q^A input rescaling
                      image_shapes: {key: (H, W, C)} | None = None)  # own image encoder on these cameras
    agent.act(features (B, obs_dim) | (obs_dim,), deterministic=False, rng=None, images=None) -> noise (B, H, A) | (H, A)
        rng: None (the agent's own stream, saved in checkpoints) | int seed | jax PRNG key
        images: the encoder's frames {key: (B, H, W, C) uint8} ((H, W, C) beside single features);
        features may instead be {"features": ..., "images": {...}} (`train.FeatureFn.agent_input`)
    agent.image_keys, agent.image_shapes -> the encoder's cameras (empty without one)
    agent.update(batches, denoise=None) -> dict[str, float]
        batches: one batch dict (one gradient step), a list of them, or a dict whose arrays have a
        leading (U, B) axis (U steps), e.g. `ReplayBuffer.sample(cfg.batch_size, rng, num_batches=cfg.utd)`.
        Keys used: features, next_features, reward, terminated, bootstrap_steps (optional, default 1:
        the TD target discounts its bootstrap by gamma ** bootstrap_steps, for n-step returns whose
        `reward` is already the discounted sum), noise + has_noise (SAC),
        actions (NA), obs + next_obs (NA, passed to denoise; with the encoder, its frames are read
        from them as uint8, without a copy). Other keys are ignored.
    agent.last_info -> dict of numpy arrays from the last gradient step (td_target, next_noise, ...;
        NA adds distill_noise and distill_target when that step distilled)
    agent.q_values(features, latent_or_action, target=False, images=None) -> (K, B)  # Q(s, w) or, for NA, Q^A(s, a)
    agent.qw_values(features, noise, images=None) -> (K, B)                             # NA only
    agent.actor_distribution(features, images=None) -> (mean (B, D), log_std (B, D))  # pre-tanh Gaussian
        (images: the encoder's unaugmented frames; target=True reads the target encoder)
    agent.state_dict() / agent.load_state_dict(d); agent.save(path); agent.load(path);
    DSRLAgent.from_checkpoint(path)
        With the encoder the state adds encoder, target_encoder, opt_encoder and aug_rng, and the
        checkpoint its image_shapes; a checkpoint of the other agent.features mode, or of other
        cameras, is refused with one sentence.
    agent.step -> number of gradient steps taken

Metrics returned by `update` (means over its gradient steps): critic_loss, actor_loss, entropy,
temperature, temperature_loss, q_mean, target_q_mean, noise_fraction (rows with noise), plus
distill_loss (NA: the last regression step's loss of the most recent distillation, carried in the
state through the steps that do not distil), and steps (total gradient steps so far).

The number of gradient steps is the number of minibatches passed: the learner samples
`cfg.utd` of them of `cfg.batch_size` each (`cfg.batch_size`, `cfg.utd` and `cfg.features` are the
caller's to apply). Each step is one call of a jitted step function from a host loop: on CPU this
measured as fast as a `lax.scan` over the stacked minibatches (within 2% at hidden 256, batch 256,
utd 20), and it compiles once whatever the number of minibatches. NA also has to loop on the host,
because the base policy runs between its jitted halves. gamma, tau, learning_rate, target_entropy,
action_magnitude and critic_backup are read from `agent.cfg` at every call and enter the compiled
programs as values, so they can be changed during a run; agents with the same network structure and
shapes share compiled programs. `na_distill_every` is read from `agent.cfg` at every call as well.

Pure helpers (tested against hand-written numpy): `tanh_gaussian_sample`, `tanh_gaussian_log_prob`,
`td_target`, `polyak`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from .config import AgentConfig, ConfigError
from .encoders import AUGMENTATIONS, ImageEncoder, augment
from .storage import read_msgpack, write_atomic

FORMAT = "dsrl_real.dsrl_agent.v1"
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
ACTIVATIONS: dict[str, Callable] = {"tanh": jnp.tanh, "relu": nn.relu, "gelu": nn.gelu}
ALGORITHMS = ("dsrl_sac", "dsrl_na")
IMAGES, NEXT_IMAGES = "images/", "next_images/"  # prefixes of the camera frames in a prepared batch

Denoise = Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray]


# ---- networks ----------------------------------------------------------------------------------
class MLP(nn.Module):
    """Dense -> LayerNorm -> activation, `num_layers` times, then a linear head.

    Same layout as `policies.diffusion.MLP`, whose activation is fixed to GELU; the agent needs it
    configurable (`cfg.activation`)."""

    hidden_dim: int
    num_layers: int
    out_dim: int
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for _ in range(self.num_layers):
            x = act(nn.LayerNorm()(nn.Dense(self.hidden_dim)(x)))
        return nn.Dense(self.out_dim)(x)


class Actor(nn.Module):
    """Pre-tanh diagonal Gaussian over the D = H*A latent dims: (mean, log_std), each (B, D)."""

    latent_dim: int
    hidden_dim: int
    num_layers: int
    activation: str

    @nn.compact
    def __call__(self, features):
        out = MLP(self.hidden_dim, self.num_layers, 2 * self.latent_dim, self.activation)(features)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class Critic(nn.Module):
    hidden_dim: int
    num_layers: int
    activation: str

    @nn.compact
    def __call__(self, features, action):
        return MLP(self.hidden_dim, self.num_layers, 1, self.activation)(jnp.concatenate([features, action], -1))[..., 0]


class CriticEnsemble(nn.Module):
    """`num` independent critics with stacked parameters; output (num, B)."""

    num: int
    hidden_dim: int
    num_layers: int
    activation: str

    @nn.compact
    def __call__(self, features, action):
        stacked = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        return stacked(self.hidden_dim, self.num_layers, self.activation, name="ensemble")(features, action)


# ---- pure SAC math -------------------------------------------------------------------------------
def _log_one_minus_tanh_sq(u):
    """log(1 - tanh(u)^2), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_sample(mean, log_std, eps, magnitude: float):
    """w = magnitude * tanh(mean + exp(log_std) * eps) and log pi(w), summed over the last axis.

    log pi(w) = log N(u; mean, std) - sum log(1 - tanh(u)^2) - D log(magnitude)."""
    u = mean + jnp.exp(log_std) * eps
    log_normal = jnp.sum(-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)
    log_det = jnp.sum(_log_one_minus_tanh_sq(u), axis=-1) + u.shape[-1] * jnp.log(magnitude)
    return magnitude * jnp.tanh(u), log_normal - log_det


def tanh_gaussian_log_prob(mean, log_std, w, magnitude: float):
    """log pi(w) for a given squashed sample w in (-magnitude, magnitude)."""
    u = jnp.arctanh(jnp.clip(w / magnitude, -1 + 1e-6, 1 - 1e-6))
    eps = (u - mean) * jnp.exp(-log_std)
    return tanh_gaussian_sample(mean, log_std, eps, magnitude)[1]


def td_target(reward, terminated, next_q, next_log_prob, alpha, gamma, backup):
    """r + gamma (1 - terminated) (backup_k next_q[k] - alpha log pi(w'|s')); next_q is (K, B);
    backup: "min" | "mean" (or a traced flag, 1.0 = mean)."""
    q = _reduce(next_q, backup)
    return reward + gamma * (1.0 - terminated) * (q - alpha * next_log_prob)


def backup_subset(next_q, key, size):
    """REDQ's target ensemble: next_q (K, B) with all but a random `size` of the K critics set to +inf,
    so that a min backup takes the min over that subset; size <= 0 (or >= K) keeps every critic."""
    k = next_q.shape[0]
    keep = (jax.random.permutation(key, k) < size) | (size <= 0)
    return jnp.where(keep[:, None], next_q, jnp.inf)


def polyak(target, online, tau: float):
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def _reduce(q, backup):
    """min or mean over the ensemble axis; `backup` is "min", "mean" or a traced flag (1.0 = mean)."""
    if isinstance(backup, str):
        return jnp.min(q, axis=0) if backup == "min" else jnp.mean(q, axis=0)
    return jnp.where(backup > 0.5, jnp.mean(q, axis=0), jnp.min(q, axis=0))


# ---- the agent -----------------------------------------------------------------------------------
# Hyperparameters that do not change the computation graph travel as traced scalars (plus
# critic_backup as the flag `backup_mean`), so agents that differ only in them share one program.
HYPERPARAMS = ("gamma", "tau", "learning_rate", "target_entropy", "action_magnitude")
STRUCTURE = ("algorithm", "hidden_dim", "num_layers", "activation", "num_critics", "na_distill_steps")
ENCODER_STRUCTURE = ("encoder_channels", "encoder_dim", "image_augmentation", "image_shift_pixels")  # with cameras only
NA_SAMPLE_KEYS = ("actor", "rng", "encoder", "target_encoder", "aug_rng")  # what DSRL-NA's sampling half reads
QW_KEYS = ("qw", "opt_qw")  # DSRL-NA's Q^W, left out of a gradient step's outputs when it does not distil


class _Core:
    """The agent's pure, jitted parts, built from the structural config fields and shapes only (no
    state) and shared by every agent with the same structure, so rebuilding an agent (a resume, a
    test) does not recompile. `hp` arguments carry the HYPERPARAMS as float32 scalars."""

    def __init__(self, structure: dict[str, Any], obs_dim: int, noise_shape, action_shape, action_bounds, image_shapes):
        c = structure
        self.distill_steps = c["na_distill_steps"]
        self.obs_dim = obs_dim
        # Own encoder (cameras given): the networks read the vector features, then the encoder's output.
        self.image_shapes: dict[str, tuple[int, ...]] = dict(image_shapes)
        self.image_keys = tuple(self.image_shapes)
        self.encoder = None
        self.net_dim, self.shift = obs_dim, 0
        if self.image_keys:
            self.encoder = ImageEncoder(self.image_keys, tuple(c["encoder_channels"]), c["encoder_dim"])
            self.net_dim = obs_dim + len(self.image_keys) * c["encoder_dim"]
            self.shift = c["image_shift_pixels"] if c["image_augmentation"] == "shift" else 0
            self.encode_jit = jax.jit(self._encode)
            self.act_encoded_jit = jax.jit(self._act_encoded, static_argnames="deterministic")
        self.noise_shape = noise_shape
        self.action_shape = action_shape
        self.latent_dim = noise_shape[0] * noise_shape[1]
        self.action_dim = action_shape[0] * action_shape[1]
        self.na = c["algorithm"] == "dsrl_na"
        self.action_bounds = action_bounds
        self.actor = Actor(self.latent_dim, c["hidden_dim"], c["num_layers"], c["activation"])
        self.critic = CriticEnsemble(c["num_critics"], c["hidden_dim"], c["num_layers"], c["activation"])
        self.tx = optax.scale_by_adam()  # Adam without the learning rate, which is applied from hp
        self.init_jit = jax.jit(self._init_state)
        self.act_jit = jax.jit(self._act_impl, static_argnames="deterministic")
        self.apply_critic_jit = jax.jit(self.critic.apply)
        self.apply_actor_jit = jax.jit(self.actor.apply)
        self.sac_step_jit = jax.jit(self._sac_step)
        # NA: two programs each, with and without the distillation (`distill`, picked on the host).
        self.na_sample_jit = jax.jit(self._na_sample, static_argnames="distill")
        self.na_step_jit = jax.jit(self._na_step, static_argnames="distill")

    # -- initial state ---------------------------------------------------------------------------
    def init_state(self, key, init_temperature: float) -> dict[str, Any]:
        state = self.init_jit(key, jnp.float32(math.log(init_temperature)))
        if self.encoder is not None:  # keys folded from `key`, so the vector agents' splits stay as they were
            encoder = _encoder_init(self.encoder, self.image_shapes)(jax.random.fold_in(key, 1))
            state.update(encoder=encoder, target_encoder=encoder, opt_encoder=self.tx.init(encoder), aug_rng=jax.random.fold_in(key, 2))
        return state

    def _init_state(self, key, log_alpha) -> dict[str, Any]:
        k_actor, k_critic, k_qw, k_rng, k_act = jax.random.split(key, 5)
        f = jnp.zeros((1, self.net_dim), jnp.float32)
        critic_in = jnp.zeros((1, self.action_dim if self.na else self.latent_dim), jnp.float32)
        actor = self.actor.init(k_actor, f)
        critic = self.critic.init(k_critic, f, critic_in)
        state = {
            "actor": actor,
            "critic": critic,
            "target_critic": critic,
            "log_alpha": log_alpha,
            "opt_actor": self.tx.init(actor),
            "opt_critic": self.tx.init(critic),
            "opt_alpha": self.tx.init(log_alpha),
            "rng": k_rng,
            "act_rng": k_act,
            "step": jnp.zeros((), jnp.int32),
        }
        if self.na:
            qw = self.critic.init(k_qw, f, jnp.zeros((1, self.latent_dim), jnp.float32))
            state["qw"] = qw
            state["opt_qw"] = self.tx.init(qw)
            state["distill_loss"] = jnp.float32(jnp.nan)  # the latest distillation's loss (none yet)
        return state

    def _adam(self, grads, opt, params, lr):
        updates, opt = self.tx.update(grads, opt, params)
        return jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates), opt

    # -- acting -----------------------------------------------------------------------------------
    def _act_impl(self, actor_params, features, key, magnitude, deterministic: bool):
        mean, log_std = self.actor.apply(actor_params, features)
        if deterministic:
            w = magnitude * jnp.tanh(mean)
        else:
            w, _ = tanh_gaussian_sample(mean, log_std, jax.random.normal(key, mean.shape), magnitude)
        return w.reshape(w.shape[0], *self.noise_shape)

    def _act_encoded(self, actor_params, encoder_params, features, images, key, magnitude, deterministic: bool):
        return self._act_impl(actor_params, self._encode(encoder_params, features, images), key, magnitude, deterministic)

    # -- own image encoder -------------------------------------------------------------------------
    def _encode(self, encoder_params, features, images):
        """The networks' input: the vector features, then the encoder's output for the uint8 frames."""
        return jnp.concatenate([features, self.encoder.apply(encoder_params, images)], axis=-1)

    def _encoded(self, state, batch):
        """Per gradient step: (next features for w' ~ pi(.|s'), next features for the target critic,
        the augmented current frames or None, the advanced augmentation stream). With the encoder,
        w' uses the online encoder (constant) and the target critic the target encoder, both on the
        same augmented next frames; NA's two halves derive the same augmentation keys from the state.
        Without it: the batch's next features twice, None, None."""
        if self.encoder is None:
            return batch["next_features"], batch["next_features"], None, None
        aug_rng, k_obs, k_next = jax.random.split(state["aug_rng"], 3)
        next_images = augment({k: batch[NEXT_IMAGES + k] for k in self.image_keys}, k_next, self.shift, self.image_keys)
        next_online = jax.lax.stop_gradient(self._encode(state["encoder"], batch["next_features"], next_images))
        next_target = self._encode(state["target_encoder"], batch["next_features"], next_images)
        images = None
        if all(IMAGES + k in batch for k in self.image_keys):  # NA's sampling half gets the next frames only
            images = augment({k: batch[IMAGES + k] for k in self.image_keys}, k_obs, self.shift, self.image_keys)
        return next_online, next_target, images, aug_rng

    def _actor_features(self, state, features, images):
        """What the actor, the temperature and Q^W see: the current encoder's output with its gradient
        stopped (only the critic's TD loss trains the encoder)."""
        if self.encoder is None:
            return features
        return jax.lax.stop_gradient(self._encode(state["encoder"], features, images))

    def _encoder_targets(self, state, hp, aug_rng) -> dict[str, Any]:
        """The target encoder follows the encoder by Polyak with the target critic's tau."""
        if self.encoder is None:
            return {}
        return {"target_encoder": polyak(state["target_encoder"], state["encoder"], hp["tau"]), "aug_rng": aug_rng}

    # -- shared losses -------------------------------------------------------------------------------
    def _scale_actions(self, a):
        if self.action_bounds is None:
            return a
        low, high = self.action_bounds
        return 2.0 * (a - low) / (high - low) - 1.0

    def _sample_latent(self, actor_params, features, key, magnitude):
        mean, log_std = self.actor.apply(actor_params, features)
        return tanh_gaussian_sample(mean, log_std, jax.random.normal(key, mean.shape), magnitude)

    def _critic_step(self, state, features, critic_in, y, mask, lr, images=None):
        """Sum over the ensemble of the masked mean squared TD error; with `images` (the augmented
        frames) its gradient also trains the encoder (own Adam state, same learning rate)."""

        def loss_fn(params, encoder):
            f = features if encoder is None else self._encode(encoder, features, images)
            q = self.critic.apply(params, f, critic_in)  # (K, B)
            per_row = jnp.sum((q - y[None]) ** 2, axis=0)
            return jnp.sum(mask * per_row) / jnp.maximum(jnp.sum(mask), 1.0), q

        if images is None:
            (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["critic"], None)
            update = {}
        else:
            (loss, q), (grads, enc_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(state["critic"], state["encoder"])
            encoder, opt_encoder = self._adam(enc_grads, state["opt_encoder"], state["encoder"], lr)
            update = {"encoder": encoder, "opt_encoder": opt_encoder}
        critic, opt = self._adam(grads, state["opt_critic"], state["critic"], lr)
        q_mean = jnp.sum(mask * jnp.mean(q, 0)) / jnp.maximum(jnp.sum(mask), 1.0)
        return {**state, "critic": critic, "opt_critic": opt, **update}, loss, q_mean

    def _actor_alpha_step(self, state, features, key, q_params_key: str, hp):
        """Actor: minimise alpha log pi(w|s) - backup_k Q_k(s, w) (Q = critic for SAC, Q^W for NA);
        then temperature: minimise log_alpha (entropy - target_entropy)."""
        alpha = jnp.exp(state["log_alpha"])
        eps = jax.random.normal(key, (features.shape[0], self.latent_dim))
        q_params = state[q_params_key]

        def actor_loss_fn(params):
            mean, log_std = self.actor.apply(params, features)
            w, log_prob = tanh_gaussian_sample(mean, log_std, eps, hp["action_magnitude"])
            q = _reduce(self.critic.apply(q_params, features, w), hp["actor_mean"])
            return jnp.mean(alpha * log_prob - q), (log_prob, w)

        (actor_loss, (log_prob, actor_w)), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state["actor"])
        actor, opt_actor = self._adam(grads, state["opt_actor"], state["actor"], hp["learning_rate"])
        entropy = -jnp.mean(log_prob)

        def alpha_loss_fn(log_alpha):
            return log_alpha * (entropy - hp["target_entropy"])

        alpha_loss, alpha_grad = jax.value_and_grad(alpha_loss_fn)(state["log_alpha"])
        log_alpha, opt_alpha = self._adam(alpha_grad, state["opt_alpha"], state["log_alpha"], hp["learning_rate"])
        state = {**state, "actor": actor, "opt_actor": opt_actor, "log_alpha": log_alpha, "opt_alpha": opt_alpha}
        metrics = {"actor_loss": actor_loss, "entropy": entropy, "temperature_loss": alpha_loss, "temperature": jnp.exp(log_alpha)}
        return state, metrics, {"actor_noise": actor_w, "actor_log_prob": log_prob}

    @staticmethod
    def _backup_candidates(next_q, key, hp):
        """The target critics' values the TD target's min may take: a random `backup_subset` of them
        (REDQ) with a min backup, all of them otherwise. `key` stays usable: the subset draws from a
        key folded out of it."""
        subset = backup_subset(next_q, jax.random.fold_in(key, 1), hp["backup_subset"])
        return jnp.where(hp["backup_mean"] > 0.5, next_q, subset)

    # -- DSRL-SAC ---------------------------------------------------------------------------------
    def _sac_step(self, state, batch, hp):
        rng, k_next, k_actor = jax.random.split(state["rng"], 3)
        alpha = jnp.exp(state["log_alpha"])
        next_features, next_target_features, images, aug_rng = self._encoded(state, batch)
        next_w, next_log_prob = self._sample_latent(state["actor"], next_features, k_next, hp["action_magnitude"])
        next_q = self.critic.apply(state["target_critic"], next_target_features, next_w)
        next_q = self._backup_candidates(next_q, k_next, hp)
        y = td_target(batch["reward"], batch["terminated"], next_q, next_log_prob, alpha * hp["backup_entropy"],
                      hp["gamma"] ** batch["bootstrap_steps"], hp["backup_mean"])
        y = jax.lax.stop_gradient(y)
        mask = batch["has_noise"]
        state, critic_loss, q_mean = self._critic_step(state, batch["features"], batch["noise"], y, mask, hp["learning_rate"], images)
        state, metrics, actor_info = self._actor_alpha_step(state, self._actor_features(state, batch["features"], images), k_actor,
                                                            "critic", hp)
        state = {
            **state,
            "target_critic": polyak(state["target_critic"], state["critic"], hp["tau"]),
            "rng": rng,
            "step": state["step"] + 1,
            **self._encoder_targets(state, hp, aug_rng),
        }
        n = jnp.maximum(jnp.sum(mask), 1.0)
        metrics.update(critic_loss=critic_loss, q_mean=q_mean, target_q_mean=jnp.sum(mask * y) / n, noise_fraction=jnp.mean(mask))
        info = {"td_target": y, "next_noise": next_w, "next_log_prob": next_log_prob, "next_q": next_q, "alpha": alpha, **actor_info}
        return state, metrics, info

    # -- DSRL-NA -------------------------------------------------------------------------------------
    def _na_sample(self, state, next_features, hp, distill: bool, next_images=None):
        """The advanced rng, w' ~ pi(.|s') (with log pi) and, if `distill`, the fresh distillation
        noise, N(0, I) clipped to +-b (else None). The key is split the same way either way. `state`
        holds only the NA_SAMPLE_KEYS it reads (a whole state would be copied out again, ~2 ms per
        step on a CPU). With the encoder, `next_images` holds the next frames (prepared-batch keys)
        and the augmentation stream is left for `_na_step` to advance."""
        rng, k_next, k_fresh = jax.random.split(state["rng"], 3)
        b = hp["action_magnitude"]
        if self.encoder is not None:
            next_features = self._encoded(state, {"next_features": next_features, **next_images})[0]
        next_w, next_log_prob = self._sample_latent(state["actor"], next_features, k_next, b)
        fresh = None
        if distill:
            fresh = jnp.clip(jax.random.normal(k_fresh, (self.distill_steps, next_features.shape[0], self.latent_dim)), -b, b)
        return rng, next_w, next_log_prob, fresh

    def _na_step(self, state, batch, next_w, next_log_prob, next_actions, fresh_w, fresh_actions, hp, distill: bool):
        """One NA gradient step; `distill` False leaves Q^W alone (fresh_w, fresh_actions are None)
        and returns the state without Q^W and its optimiser (QW_KEYS), which the caller keeps: passed
        through, they would be copied."""
        rng, k_actor = jax.random.split(state["rng"])
        alpha = jnp.exp(state["log_alpha"])
        lr = hp["learning_rate"]
        _, next_target_features, images, aug_rng = self._encoded(state, batch)
        # Q^A: TD on executed chunks, a' = denoise(s', w'); needs no noise from the data.
        next_q = self.critic.apply(state["target_critic"], next_target_features, self._scale_actions(next_actions))
        next_q = self._backup_candidates(next_q, k_actor, hp)
        y = jax.lax.stop_gradient(td_target(batch["reward"], batch["terminated"], next_q, next_log_prob,
                                            alpha * hp["backup_entropy"], hp["gamma"] ** batch["bootstrap_steps"], hp["backup_mean"]))
        ones = jnp.ones_like(batch["reward"])
        actions = self._scale_actions(batch["actions"])
        state, critic_loss, q_mean = self._critic_step(state, batch["features"], actions, y, ones, lr, images)
        features = self._actor_features(state, batch["features"], images)  # Q^W and the actor: the encoder's output, no gradient
        distill_info = {}
        if distill:
            # Q^W: member-wise regression onto the just-updated Q^A at a = denoise(s, w), fresh w.
            targets = jax.vmap(lambda a: self.critic.apply(state["critic"], features, self._scale_actions(a)))(fresh_actions)
            targets = jax.lax.stop_gradient(targets)  # (S, K, B)

            def regress(carry, inputs):
                params, opt = carry
                w, target = inputs

                def loss_fn(p):
                    return jnp.mean(jnp.sum((self.critic.apply(p, features, w) - target) ** 2, axis=0))

                loss, grads = jax.value_and_grad(loss_fn)(params)
                return self._adam(grads, opt, params, lr), loss

            (qw, opt_qw), distill_losses = jax.lax.scan(regress, (state["qw"], state["opt_qw"]), (fresh_w, targets))
            state = {**state, "qw": qw, "opt_qw": opt_qw, "distill_loss": distill_losses[-1]}
            distill_info = {"distill_noise": fresh_w, "distill_target": targets}
        state, metrics, actor_info = self._actor_alpha_step(state, features, k_actor, "qw", hp)
        state = {
            **state,
            "target_critic": polyak(state["target_critic"], state["critic"], hp["tau"]),
            "rng": rng,
            "step": state["step"] + 1,
            **self._encoder_targets(state, hp, aug_rng),
        }
        metrics.update(critic_loss=critic_loss, q_mean=q_mean, target_q_mean=jnp.mean(y), distill_loss=state["distill_loss"],
                       noise_fraction=jnp.mean(batch["has_noise"]))
        info = {"td_target": y, "next_noise": next_w, "next_log_prob": next_log_prob, "next_q": next_q, "alpha": alpha, **distill_info, **actor_info}
        if not distill:
            state = {k: v for k, v in state.items() if k not in QW_KEYS}
        return state, metrics, info


_CORES: dict[tuple, _Core] = {}
_ENCODER_INITS: dict[tuple, Callable] = {}


def _encoder_init(encoder: ImageEncoder, image_shapes: dict[str, tuple[int, ...]]) -> Callable:
    """The encoder's jitted initialiser, one per encoder structure: SAC and NA agents share it (its
    random initialisers take seconds to compile on a CPU)."""
    key = (encoder.keys, encoder.channels, encoder.dim, tuple(image_shapes.items()))
    if key not in _ENCODER_INITS:
        frames = {k: jnp.zeros((1, *s), jnp.uint8) for k, s in image_shapes.items()}
        _ENCODER_INITS[key] = jax.jit(lambda rng: encoder.init(rng, frames))
    return _ENCODER_INITS[key]


def _validate(cfg: AgentConfig) -> None:
    if cfg.algorithm not in ALGORITHMS:
        raise ConfigError(f"agent.algorithm='{cfg.algorithm}' is unknown; use one of: {', '.join(ALGORITHMS)}.")
    if cfg.critic_backup not in ("min", "mean"):
        raise ConfigError(f"agent.critic_backup='{cfg.critic_backup}' is unknown; use min or mean.")
    if not 0 <= cfg.backup_subset <= cfg.num_critics:
        raise ConfigError(f"agent.backup_subset={cfg.backup_subset} must lie between 0 (every critic) and agent.num_critics "
                          f"({cfg.num_critics}).")
    if cfg.actor_objective not in ("min", "mean"):
        raise ConfigError(f"agent.actor_objective='{cfg.actor_objective}' is unknown; use min or mean.")
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(f"agent.activation='{cfg.activation}' is unknown; use one of: {', '.join(ACTIVATIONS)}.")
    if min(cfg.num_critics, cfg.num_layers, cfg.hidden_dim) < 1 or cfg.action_magnitude <= 0 or cfg.init_temperature <= 0:
        raise ConfigError("agent.num_critics, num_layers, hidden_dim, action_magnitude and init_temperature must be positive.")
    if cfg.n_step < 1:
        raise ConfigError(f"agent.n_step={cfg.n_step} must be at least 1 (1: one-step TD targets).")
    if cfg.algorithm == "dsrl_na" and cfg.na_distill_steps < 1:
        raise ConfigError("agent.na_distill_steps must be at least 1 for dsrl_na.")
    _distill_every(cfg)


def _validate_encoder(cfg: AgentConfig, image_shapes: dict[str, tuple[int, ...]]) -> None:
    if cfg.features != "observation":
        raise ConfigError(f"Camera frames for the agent's own image encoder need agent.features=observation (it is '{cfg.features}').")
    bad = [k for k, s in image_shapes.items() if len(s) != 3]
    if bad:
        raise ValueError(f"image_shapes must be (height, width, channels) per camera; got {[image_shapes[k] for k in bad]} for {bad}.")
    if cfg.image_augmentation not in AUGMENTATIONS:
        raise ConfigError(f"agent.image_augmentation='{cfg.image_augmentation}' is unknown; use one of: {', '.join(AUGMENTATIONS)}.")
    if not cfg.encoder_channels or min(cfg.encoder_channels) < 1 or cfg.encoder_dim < 1 or cfg.image_shift_pixels < 0:
        raise ConfigError("agent.encoder_channels (a non-empty list) and agent.encoder_dim must be positive, "
                          "agent.image_shift_pixels not negative.")


def _distill_every(cfg: AgentConfig) -> int:
    """`cfg.na_distill_every`, checked (also at every update, since the config may change in a run)."""
    every = cfg.na_distill_every
    if not isinstance(every, int) or every < 1:
        raise ConfigError(f"agent.na_distill_every={every!r} must be an integer of at least 1 (1: distil Q^W on every gradient step).")
    return every


def _bounds_array(bound, action_shape) -> np.ndarray:
    """A bound per action dim (A,), per chunk entry (H, A) or flattened (H*A, as checkpoints hold it) -> (H*A,)."""
    bound = np.asarray(bound, np.float32)
    if bound.size == math.prod(action_shape):
        bound = bound.reshape(action_shape)
    return np.broadcast_to(bound, action_shape).reshape(-1).copy()


def _core(cfg: AgentConfig, obs_dim: int, noise_shape, action_shape, action_bounds, image_shapes) -> _Core:
    _validate(cfg)
    image_shapes = {k: tuple(int(x) for x in image_shapes[k]) for k in sorted(image_shapes or {})}
    if image_shapes:
        _validate_encoder(cfg, image_shapes)
    noise_shape = (int(noise_shape[0]), int(noise_shape[1]))
    action_shape = tuple(int(x) for x in (action_shape or noise_shape))
    if action_bounds is not None:
        low, high = (_bounds_array(b, action_shape) for b in action_bounds)
        if np.any(high <= low):
            raise ValueError("action_bounds must have high > low in every dimension.")
        action_bounds = (low, high)
    fields = STRUCTURE + (ENCODER_STRUCTURE if image_shapes else ())
    structure = {k: tuple(v) if isinstance(v, list) else v for k, v in ((k, getattr(cfg, k)) for k in fields)}
    bounds_key = None if action_bounds is None else (action_bounds[0].tobytes(), action_bounds[1].tobytes())
    key = (tuple(structure.items()), obs_dim, noise_shape, action_shape, bounds_key, tuple(image_shapes.items()))
    if key not in _CORES:
        _CORES[key] = _Core(structure, obs_dim, noise_shape, action_shape, action_bounds, image_shapes)
    return _CORES[key]


def _plain(value):
    """Config values as compared across a checkpoint (lists may come back as tuples or arrays)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple, np.ndarray)) else value


class DSRLAgent:
    """See the module docstring."""

    def __init__(
        self,
        cfg: AgentConfig,
        obs_dim: int,
        noise_shape: tuple[int, int],
        action_shape: tuple[int, int] | None = None,
        action_bounds: tuple[Any, Any] | None = None,
        image_shapes: Mapping[str, tuple[int, int, int]] | None = None,
    ):
        self.core = _core(cfg, int(obs_dim), noise_shape, action_shape, action_bounds, image_shapes)
        self.cfg = cfg
        self.obs_dim = self.core.obs_dim
        self.image_shapes, self.image_keys = self.core.image_shapes, self.core.image_keys
        self.noise_shape = self.core.noise_shape
        self.action_shape = self.core.action_shape
        self.action_bounds = self.core.action_bounds
        self.latent_dim, self.action_dim, self.na = self.core.latent_dim, self.core.action_dim, self.core.na
        self.last_info: dict[str, np.ndarray] = {}
        self._state = self.core.init_state(jax.random.PRNGKey(cfg.seed), cfg.init_temperature)

    # -- acting -----------------------------------------------------------------------------------
    def act(self, features, deterministic: bool = False, rng=None, images: Mapping[str, Any] | None = None) -> np.ndarray:
        """Noise (B, H, A) in [-b, b] for features (B, obs_dim); a single (obs_dim,) gives (H, A).

        With the own encoder, `images` holds each camera's uint8 frames, (B, H, W, C) (or (H, W, C)
        beside single features), never augmented here; `features` may also be the mapping
        {"features": ..., "images": {...}} (what `FeatureFn.agent_input` builds).
        deterministic: magnitude * tanh(mean) (evaluation). rng: None uses and advances the agent's
        own stream (saved in checkpoints); an int seeds a fresh key; a jax key is used as is."""
        if isinstance(features, Mapping):
            features, images = features["features"], features.get("images")
        features = np.asarray(features, np.float32)
        single = features.ndim == 1
        if single:
            features = features[None]
        if features.shape[-1] != self.obs_dim:
            raise ValueError(f"Agent features have {features.shape[-1]} dims; the agent was built for {self.obs_dim}.")
        frames = None
        if self.image_keys:
            images = images if images is not None else {}
            if single:
                images = {k: np.asarray(v)[None] for k, v in images.items()}
            frames = self._frames(images, features.shape[:-1], "act()'s images")
        elif images:
            raise ValueError("This agent has no image encoder (agent.features=policy_embedding, or no cameras); pass the feature vector only.")
        if rng is None:
            key, self._state["act_rng"] = tuple(jax.random.split(self._state["act_rng"]))
        elif isinstance(rng, (int, np.integer)):
            key = jax.random.PRNGKey(int(rng))
        else:
            key = rng
        if frames is None:
            w = self.core.act_jit(self._state["actor"], jnp.asarray(features), key, jnp.float32(self.cfg.action_magnitude), deterministic=bool(deterministic))
        else:
            w = self.core.act_encoded_jit(self._state["actor"], self._state["encoder"], jnp.asarray(features), frames, key,
                                          jnp.float32(self.cfg.action_magnitude), deterministic=bool(deterministic))
        w = np.asarray(w)
        return w[0] if single else w

    def _frames(self, source: Mapping[str, Any], lead: tuple[int, ...], what: str) -> dict[str, np.ndarray]:
        """The encoder's cameras from `source`, checked and left as they are (uint8, no copy)."""
        out = {}
        for k in self.image_keys:
            if k not in source:
                raise KeyError(f"The agent's image encoder reads camera frames '{k}', which {what} lack (they have {sorted(source)}).")
            x = np.asarray(source[k])
            if x.dtype != np.uint8:
                raise ValueError(f"Camera frames '{k}' must be uint8 for the agent's image encoder (got {x.dtype}); "
                                 "pass them as recorded.")
            if x.shape != (*lead, *self.image_shapes[k]):
                raise ValueError(f"Camera frames '{k}' have shape {x.shape}; the agent expects {(*lead, *self.image_shapes[k])}.")
            out[k] = x
        return out

    def _net_features(self, features, images, target: bool = False):
        """The networks' input for inspection: the features, then (own encoder) the online or target encoder's output."""
        features = np.asarray(features, np.float32)
        if not self.image_keys:
            return jnp.asarray(features)
        frames = self._frames(images if images is not None else {}, features.shape[:-1], "the images")
        return self.core.encode_jit(self._state["target_encoder" if target else "encoder"], jnp.asarray(features), frames)

    # -- inspection --------------------------------------------------------------------------------
    # With the own encoder, pass the cameras' uint8 frames as `images` (no augmentation); `target`
    # uses the target encoder with the target critic.
    def actor_distribution(self, features, images=None) -> tuple[np.ndarray, np.ndarray]:
        mean, log_std = self.core.apply_actor_jit(self._state["actor"], self._net_features(features, images))
        return np.asarray(mean), np.asarray(log_std)

    def q_values(self, features, latent_or_action, target: bool = False, images=None) -> np.ndarray:
        """(K, B): Q(s, w) for SAC, Q^A(s, a) (a in action units) for NA."""
        x = np.asarray(latent_or_action, np.float32).reshape(len(features), -1)
        if self.na:
            x = np.asarray(self.core._scale_actions(jnp.asarray(x)))
        params = self._state["target_critic" if target else "critic"]
        return np.asarray(self.core.apply_critic_jit(params, self._net_features(features, images, target), jnp.asarray(x)))

    def qw_values(self, features, noise, images=None) -> np.ndarray:
        if not self.na:
            raise ValueError("qw_values exists only for dsrl_na.")
        w = np.asarray(noise, np.float32).reshape(len(features), -1)
        return np.asarray(self.core.apply_critic_jit(self._state["qw"], self._net_features(features, images), jnp.asarray(w)))

    @property
    def temperature(self) -> float:
        return float(jnp.exp(self._state["log_alpha"]))

    @property
    def step(self) -> int:
        return int(self._state["step"])

    # -- update ----------------------------------------------------------------------------------------
    def _hp(self) -> dict[str, jnp.ndarray]:
        hp = {k: jnp.float32(getattr(self.cfg, k)) for k in HYPERPARAMS}
        hp["backup_mean"] = jnp.float32(self.cfg.critic_backup == "mean")
        hp["actor_mean"] = jnp.float32(self.cfg.actor_objective == "mean")
        hp["backup_subset"] = jnp.float32(self.cfg.backup_subset)
        hp["backup_entropy"] = jnp.float32(self.cfg.backup_entropy)
        return hp

    def _prepare(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The arrays the jitted steps need, flattened and cast (leading axes kept); obs dicts stay out,
        except the own encoder's camera frames, as `images/<key>` and `next_images/<key>`, uint8 as stored."""
        features = np.asarray(batch["features"], np.float32)
        if features.shape[-1] != self.obs_dim:
            raise ValueError(f"Batch features have {features.shape[-1]} dims; the agent was built for {self.obs_dim}.")
        lead = features.shape[:-1]

        def get(key, tail, required=True):
            if key not in batch:
                if required:
                    raise KeyError(f"The agent's batch needs '{key}' (it has {sorted(batch)}).")
                return None
            return np.asarray(batch[key], np.float32).reshape(*lead, *tail)

        out = {
            "features": features,
            "next_features": get("next_features", (self.obs_dim,)),
            "reward": get("reward", ()),
            "terminated": get("terminated", ()),
        }
        steps = get("bootstrap_steps", (), required=False)  # n-step returns (ReplayBuffer.sample); absent: 1
        out["bootstrap_steps"] = np.ones(lead, np.float32) if steps is None else steps
        noise = get("noise", (self.latent_dim,), required=not self.na)
        has_noise = get("has_noise", (), required=False)
        if noise is None:
            noise = np.zeros((*lead, self.latent_dim), np.float32)
            has_noise = np.zeros(lead, np.float32)
        finite = np.all(np.isfinite(noise), axis=-1)
        has_noise = finite.astype(np.float32) if has_noise is None else has_noise * finite
        out["noise"] = np.where(has_noise[..., None] > 0, np.nan_to_num(noise), 0.0).astype(np.float32)
        out["has_noise"] = has_noise.astype(np.float32)
        if self.na:
            out["actions"] = get("actions", (self.action_dim,))
        for prefix, source in ((IMAGES, "obs"), (NEXT_IMAGES, "next_obs")) if self.image_keys else ():
            if source not in batch:
                raise KeyError(f"The agent's image encoder needs the camera frames '{source}' in the batch "
                               "(sample with include_obs=True).")
            out.update({prefix + k: v for k, v in self._frames(batch[source], lead, f"the batch's '{source}'").items()})
        return out

    @staticmethod
    def _stack(batches) -> tuple[Mapping[str, Any], int | None]:
        """(batch, number of stacked steps or None for a single unstacked batch)."""
        if isinstance(batches, Mapping):
            return batches, (len(batches["features"]) if np.ndim(batches["features"]) == 3 else None)
        batches = list(batches)
        if not batches:
            raise ValueError("update() got no batches.")
        return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches), len(batches)

    def update(self, batches, denoise: Denoise | None = None) -> dict[str, float]:
        """One gradient step per minibatch in `batches` (see the module docstring); returns the mean
        of each metric over the steps, plus `steps` (the total gradient steps taken so far).
        DSRL-NA needs `denoise(obs_dict, noise (B, H, A)) -> chunks (B, *action_shape)`."""
        batch, steps = self._stack(batches)
        prepared = self._prepare(batch)
        hp = self._hp()
        all_metrics = []
        if not self.na:
            for i in range(1 if steps is None else steps):
                step_batch = prepared if steps is None else {k: v[i] for k, v in prepared.items()}
                self._state, m, info = self.core.sac_step_jit(self._state, step_batch, hp)
                all_metrics.append(m)
        else:
            if denoise is None:
                raise ValueError("dsrl_na needs `denoise(obs, noise) -> chunks` (e.g. base_policy.sample) in update().")
            if "obs" not in batch or "next_obs" not in batch:
                raise KeyError("dsrl_na needs the policy observations 'obs' and 'next_obs' in the batch (sample with include_obs=True).")
            every, first = _distill_every(self.cfg), self.step
            for i in range(1 if steps is None else steps):
                pick = (lambda x: x) if steps is None else (lambda x: x[i])  # noqa: E731
                step_batch = {k: pick(v) for k, v in prepared.items()}
                next_obs = {k: pick(np.asarray(v)) for k, v in batch["next_obs"].items()}
                distill = (first + i) % every == 0  # the global step index, so resumes and groupings agree
                next_images = {k: v for k, v in step_batch.items() if k.startswith(NEXT_IMAGES)} if self.image_keys else None
                sample_state = {k: self._state[k] for k in NA_SAMPLE_KEYS if k in self._state}
                rng, next_w, next_log_prob, fresh = self.core.na_sample_jit(
                    sample_state, step_batch["next_features"], hp, distill=distill, next_images=next_images
                )
                self._state = {**self._state, "rng": rng}
                n = len(step_batch["features"])
                next_actions = self._denoise(denoise, next_obs, next_w, n)
                fresh_actions = None
                if distill:
                    obs = {k: pick(np.asarray(v)) for k, v in batch["obs"].items()}
                    fresh_actions = np.stack([self._denoise(denoise, obs, w, n) for w in np.asarray(fresh)])
                new_state, m, info = self.core.na_step_jit(
                    self._state, step_batch, next_w, next_log_prob, next_actions, fresh, fresh_actions, hp, distill=distill
                )
                self._state = {**self._state, **new_state}  # without a distillation Q^W is not returned
                all_metrics.append(m)
        metrics = jax.tree_util.tree_map(lambda *xs: np.mean(np.stack(xs)), *jax.device_get(all_metrics))
        self.last_info = {k: np.asarray(v) for k, v in info.items()}
        out = {k: float(v) for k, v in metrics.items()}
        out["steps"] = self.step
        return out

    def _denoise(self, denoise: Denoise, obs, flat_noise, n: int) -> np.ndarray:
        chunks = np.asarray(denoise(obs, np.asarray(flat_noise).reshape(n, *self.noise_shape)), np.float32)
        if chunks.shape != (n, *self.action_shape):
            raise ValueError(f"denoise returned chunks of shape {chunks.shape}; expected {(n, *self.action_shape)}.")
        return chunks.reshape(n, self.action_dim)

    # -- checkpoints -------------------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "config": dataclasses.asdict(self.cfg),
            "obs_dim": self.obs_dim,
            "noise_shape": list(self.noise_shape),
            "action_shape": list(self.action_shape),
            "image_shapes": {k: list(v) for k, v in self.image_shapes.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: params, targets, optimiser states, temperature,
        both rng streams, step counter; plus the construction arguments."""
        meta = self._meta()
        meta["action_bounds"] = {} if self.action_bounds is None else {"low": self.action_bounds[0], "high": self.action_bounds[1]}
        meta["state"] = serialization.to_state_dict(jax.tree_util.tree_map(np.array, jax.device_get(self._state)))
        return meta

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        if d.get("format") != FORMAT:
            raise ValueError(f"Not a DSRL agent state (format {d.get('format')!r}, expected {FORMAT!r}).")
        mine, theirs = self._meta(), d
        theirs_mode = theirs["config"].get("features", "policy_embedding")
        if theirs_mode != self.cfg.features:
            raise ValueError(f"The agent checkpoint was trained with agent.features={theirs_mode}, but the config says "
                             f"{self.cfg.features}; set agent.features={theirs_mode} to continue it or start a new run.")
        theirs_images = {k: list(v) for k, v in (theirs.get("image_shapes") or {}).items()}
        if theirs_images != mine["image_shapes"]:
            raise ValueError(f"The agent checkpoint's image encoder reads cameras {theirs_images or 'none'}, but this agent "
                             f"reads {mine['image_shapes'] or 'none'}; use the cameras and agent.encoder_image_keys of the run that wrote it.")
        for key in ("obs_dim", "noise_shape", "action_shape"):
            if list(np.atleast_1d(theirs[key])) != list(np.atleast_1d(mine[key])):
                raise ValueError(f"The agent checkpoint has {key}={theirs[key]}, but this agent has {mine[key]}; build the agent to match.")
        encoder_keys = ("encoder_channels", "encoder_dim") if self.image_keys else ()
        for key in ("algorithm", "hidden_dim", "num_layers", "num_critics", "activation", *encoder_keys):
            if _plain(theirs["config"][key]) != _plain(mine["config"][key]):
                raise ValueError(f"The agent checkpoint has agent.{key}={theirs['config'][key]!r}, but the config says {mine['config'][key]!r}.")
        state = d["state"]
        if self.na and "distill_loss" not in state:  # written before na_distill_every existed
            state = {**state, "distill_loss": np.float32(np.nan)}
        restored = serialization.from_state_dict(self._state, state)
        self._state = jax.tree_util.tree_map(lambda t, x: jnp.asarray(x, dtype=jnp.asarray(t).dtype), self._state, restored)

    def save(self, path: str | Path) -> Path:

        path = Path(path)
        write_atomic(path, serialization.msgpack_serialize(self.state_dict()))
        return path

    @staticmethod
    def _read(path: str | Path) -> dict[str, Any]:
        return read_msgpack(path, FORMAT, "DSRL agent checkpoint", "start a new run")

    def load(self, path: str | Path) -> None:
        self.load_state_dict(self._read(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "DSRLAgent":
        d = cls._read(path)
        known = {f.name for f in dataclasses.fields(AgentConfig)}
        cfg = AgentConfig(**{k: v for k, v in d["config"].items() if k in known})
        bounds = d.get("action_bounds") or None
        bounds = None if not bounds else (np.asarray(bounds["low"]), np.asarray(bounds["high"]))
        images = {k: tuple(v) for k, v in (d.get("image_shapes") or {}).items()}
        agent = cls(cfg, int(d["obs_dim"]), tuple(d["noise_shape"]), tuple(d["action_shape"]), bounds, images)
        agent.load_state_dict(d)
        return agent
