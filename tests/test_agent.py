import dataclasses
import math

import jax
import numpy as np
import pytest

from dsrl_real.agents.dsrl import DSRLAgent
from dsrl_real.agents.dsrl.distributions import tanh_gaussian_log_prob, tanh_gaussian_sample
from dsrl_real.agents.dsrl.losses import backup_subset, td_target
from dsrl_real.config import AgentConfig, ConfigError

OBS, SHAPE = 3, (2, 3)
D = SHAPE[0] * SHAPE[1]


def small_cfg(**over) -> AgentConfig:
    # SAC as published (2 critics, entropy in the TD target) and NA distilling Q^W on every gradient step;
    # the defaults are the simulator's CPU preset.
    base = dict(hidden_dim=32, num_layers=2, utd=1, batch_size=16, action_magnitude=1.5, na_distill_steps=3,
                na_distill_every=1, num_critics=2, backup_entropy=True, init_temperature=1.0)
    base.update(over)
    return AgentConfig(**base)


def sac_batch(rng, B=64, shape=SHAPE, **over):
    batch = dict(
        features=rng.normal(size=(B, OBS)).astype(np.float32),
        next_features=rng.normal(size=(B, OBS)).astype(np.float32),
        noise=rng.uniform(-1.4, 1.4, size=(B, *shape)).astype(np.float32),
        has_noise=np.ones(B, bool),
        reward=rng.normal(size=B).astype(np.float32),
        terminated=np.zeros(B, bool),
        truncated=np.zeros(B, bool),
    )
    batch.update(over)
    return batch


def np_log_prob(mean, log_std, w, magnitude):
    """log density of w = magnitude * tanh(u), u ~ N(mean, exp(log_std)^2), written out in float64."""
    mean, log_std, w = (np.asarray(x, np.float64) for x in (mean, log_std, w))
    x = w / magnitude
    u = np.arctanh(x)
    std = np.exp(log_std)
    gauss = -0.5 * ((u - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    jacobian = np.log(magnitude) + np.log(1 - x**2)  # dw/du = magnitude * (1 - tanh(u)^2)
    return np.sum(gauss - jacobian, axis=-1)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


# ---- pure SAC math --------------------------------------------------------------------------------
def test_tanh_gaussian_log_prob_with_magnitude_matches_hand_formula():
    mean = np.array([[0.3, -1.2, 0.0], [2.0, 0.1, -0.4]], np.float32)
    log_std = np.array([[-0.5, 0.2, 0.0], [-1.0, 0.5, -2.0]], np.float32)
    eps = np.array([[1.0, -0.5, 0.25], [-0.3, 1.5, 0.0]], np.float32)
    m = 2.5
    w, logp = tanh_gaussian_sample(mean, log_std, eps, m)
    u = mean.astype(np.float64) + np.exp(log_std.astype(np.float64)) * eps
    np.testing.assert_allclose(np.asarray(w), m * np.tanh(u), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(logp), np_log_prob(mean, log_std, m * np.tanh(u), m), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tanh_gaussian_log_prob(mean, log_std, w, m)), np.asarray(logp), atol=2e-4)
    # Changing the magnitude shifts log pi by exactly -D * log(magnitude ratio).
    _, logp1 = tanh_gaussian_sample(mean, log_std, eps, 1.0)
    np.testing.assert_allclose(np.asarray(logp) - np.asarray(logp1), -3 * np.log(2.5), rtol=1e-5)


def test_tanh_gaussian_density_integrates_to_one_on_the_scaled_box():
    m = 1.5
    grid = np.linspace(-m, m, 200_001)[1:-1]
    dens = np.exp(np.asarray(tanh_gaussian_log_prob(np.float32(0.4), np.float32(-0.3), grid[:, None].astype(np.float32), m)))
    assert abs(np.sum(dens) * (grid[1] - grid[0]) - 1.0) < 1e-3


def test_td_target_by_hand():
    r = np.array([1.0, 2.0, 3.0])
    terminated = np.array([0.0, 1.0, 0.0])
    next_q = np.array([[1.0, 5.0, 2.0], [3.0, 4.0, 0.0]])
    logp = np.array([0.5, -1.0, 2.0])
    # min: q = [1, 4, 0]; y = r + 0.9 (1 - d) (q - 0.2 logp)
    np.testing.assert_allclose(np.asarray(td_target(r, terminated, next_q, logp, 0.2, 0.9, "min")), [1.81, 2.0, 2.64], rtol=1e-6)
    # mean: q = [2, 4.5, 1]
    np.testing.assert_allclose(np.asarray(td_target(r, terminated, next_q, logp, 0.2, 0.9, "mean")), [2.71, 2.0, 3.54], rtol=1e-6)


# ---- one SAC update, checked piece by piece ----------------------------------------------------------
@pytest.mark.parametrize("backup", ["min", "mean"])
def test_update_td_target_bootstraps_truncation_not_termination(backup):
    cfg = small_cfg(critic_backup=backup, gamma=0.9, init_temperature=0.3)
    rng = np.random.default_rng(0)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    before = DSRLAgent(dataclasses.replace(cfg, seed=5), OBS, SHAPE)
    before.load_state_dict(agent.state_dict())
    B = 64
    batch = sac_batch(rng, B, terminated=np.arange(B) % 8 == 1, truncated=np.arange(B) % 8 == 2)
    agent.update(batch)
    info = agent.last_info
    assert info["next_noise"].shape == (B, D) and np.all(np.abs(info["next_noise"]) <= 1.5)
    next_q = before.q_values(batch["next_features"], info["next_noise"], target=True)
    assert next_q.shape == (2, B)
    np.testing.assert_allclose(info["next_q"], next_q, rtol=1e-5, atol=1e-6)
    mean, log_std = before.actor_distribution(batch["next_features"])
    logp = np_log_prob(mean, log_std, info["next_noise"], 1.5)
    np.testing.assert_allclose(info["next_log_prob"], logp, atol=2e-3)
    q = next_q.min(axis=0) if backup == "min" else next_q.mean(axis=0)
    y = batch["reward"] + 0.9 * (1 - batch["terminated"]) * (q - 0.3 * logp)
    np.testing.assert_allclose(info["td_target"], y, atol=2e-3)
    # Terminated rows are exactly the reward; truncated rows bootstrap like ordinary ones.
    term, trunc = batch["terminated"], batch["truncated"]
    np.testing.assert_array_equal(info["td_target"][term], batch["reward"][term])
    assert np.all(np.abs(info["td_target"][trunc] - batch["reward"][trunc]) > 1e-2)


@pytest.mark.parametrize("n_step", [False, True])
@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_without_entropy_backup_the_td_target_is_reward_plus_discounted_q(algorithm, n_step):
    cfg = small_cfg(algorithm=algorithm, gamma=0.9, init_temperature=0.3, backup_entropy=False)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    before = DSRLAgent(cfg, OBS, SHAPE)
    before.load_state_dict(agent.state_dict())
    rng = np.random.default_rng(1)
    B = 32
    batch = sac_batch(rng, B, terminated=np.arange(B) % 4 == 0)
    batch.update(actions=rng.uniform(-1, 1, (B, *SHAPE)).astype(np.float32), obs={"x": batch["features"]},
                 next_obs={"x": batch["next_features"]})
    steps = np.ones(B)
    if n_step:  # n-step rows (ReplayBuffer.sample(n_step=...)): the bootstrap is discounted by gamma ** steps
        steps = 1.0 + np.arange(B) % 3
        batch["bootstrap_steps"] = steps
    agent.update(batch, denoise=lambda obs, w: np.tanh(w))
    info = agent.last_info
    critic_input = np.tanh(info["next_noise"].reshape(B, *SHAPE)) if algorithm == "dsrl_na" else info["next_noise"]
    q = before.q_values(batch["next_features"], critic_input, target=True).min(axis=0)
    y = batch["reward"] + 0.9**steps * (1 - batch["terminated"]) * q  # no -alpha log pi term
    np.testing.assert_allclose(info["td_target"], y, atol=1e-4)


def test_backup_subset_keeps_exactly_that_many_critics():
    next_q = np.arange(15.0).reshape(5, 3)
    for seed in range(20):
        kept = np.asarray(backup_subset(next_q, jax.random.PRNGKey(seed), 2))
        rows = [k for k in range(5) if np.all(np.isfinite(kept[k]))]
        assert len(rows) == 2 and np.all(np.isinf(np.delete(kept, rows, axis=0)))
        np.testing.assert_array_equal(kept[rows], next_q[rows])
    np.testing.assert_array_equal(backup_subset(next_q, jax.random.PRNGKey(0), 0), next_q)  # 0: every critic
    np.testing.assert_array_equal(backup_subset(next_q, jax.random.PRNGKey(0), 5), next_q)
    picks = {tuple(np.flatnonzero(np.isfinite(np.asarray(backup_subset(next_q, jax.random.PRNGKey(s), 2))[:, 0])))
             for s in range(60)}
    assert len(picks) >= 8  # a fresh random pair per key (10 pairs exist)


@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_update_with_a_backup_subset_takes_the_min_over_that_subset(algorithm):
    cfg = small_cfg(algorithm=algorithm, num_critics=5, backup_subset=2, gamma=0.9, backup_entropy=False)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    before = DSRLAgent(cfg, OBS, SHAPE)
    before.load_state_dict(agent.state_dict())
    rng = np.random.default_rng(3)
    batch = sac_batch(rng, terminated=np.arange(64) % 5 == 0)
    batch.update(actions=rng.uniform(-1, 1, (64, *SHAPE)).astype(np.float32), obs={"x": batch["features"]},
                 next_obs={"x": batch["next_features"]})
    agent.update(batch, denoise=lambda obs, w: np.tanh(w))
    info = agent.last_info
    kept = np.isfinite(info["next_q"][:, 0])
    assert kept.sum() == 2 and np.all(np.isfinite(info["next_q"][kept]))
    critic_input = np.tanh(info["next_noise"].reshape(64, *SHAPE)) if algorithm == "dsrl_na" else info["next_noise"]
    all_q = before.q_values(batch["next_features"], critic_input, target=True)
    y = batch["reward"] + 0.9 * (1 - batch["terminated"]) * all_q[kept].min(axis=0)
    np.testing.assert_allclose(info["td_target"], y, atol=1e-5)
    assert np.any(all_q.min(axis=0) < all_q[kept].min(axis=0) - 1e-4)  # less pessimistic than the min over all five


@pytest.mark.parametrize("objective", ["min", "mean"])
def test_actor_loss_uses_the_configured_reduction_of_the_updated_critics(objective):
    cfg = small_cfg(num_critics=3, actor_objective=objective, init_temperature=0.3)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    batch = sac_batch(np.random.default_rng(4))
    metrics = agent.update(batch)
    info = agent.last_info
    # The actor step runs after the critic step, against the updated critics (Polyak moves only the targets).
    q = agent.q_values(batch["features"], info["actor_noise"])
    q = q.min(axis=0) if objective == "min" else q.mean(axis=0)
    assert metrics["actor_loss"] == pytest.approx(float(np.mean(0.3 * info["actor_log_prob"] - q)), abs=1e-5)


def test_polyak_target_after_one_update():
    cfg = small_cfg(tau=0.1)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    old = agent.state_dict()["state"]
    agent.update(sac_batch(np.random.default_rng(1)))
    new = agent.state_dict()["state"]
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(old["critic"]), leaves(new["critic"])))
    for t0, c1, t1 in zip(leaves(old["target_critic"]), leaves(new["critic"]), leaves(new["target_critic"])):
        np.testing.assert_allclose(t1, 0.9 * t0 + 0.1 * c1, rtol=1e-6, atol=1e-7)
    assert agent.step == 1


@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_evaluation_acts_with_the_averaged_actor_and_training_is_unchanged(algorithm):
    make, denoise = (na_batch, LinearDenoiser.chunk) if algorithm == "dsrl_na" else (sac_batch, None)
    averaged = DSRLAgent(small_cfg(algorithm=algorithm, eval_average_tau=0.25), OBS, SHAPE)
    live = DSRLAgent(small_cfg(algorithm=algorithm), OBS, SHAPE)
    expected = leaves(averaged._state["actor"])
    rng = np.random.default_rng(3)
    for _ in range(3):
        batch = make(rng)
        assert averaged.update(batch, denoise) == live.update(batch, denoise)
        expected = [0.75 * e + 0.25 * a for e, a in zip(expected, leaves(averaged._state["actor"]))]
    for a, b in zip(leaves(averaged._state["actor"]), leaves(live._state["actor"])):
        np.testing.assert_array_equal(a, b)  # the average only reads the actor: learning is the same
    for e, got in zip(expected, leaves(averaged._state["eval_actor"])):
        np.testing.assert_allclose(got, e, rtol=1e-5, atol=1e-6)
    for e, got in zip(leaves(live._state["actor"]), leaves(live._state["eval_actor"])):
        np.testing.assert_array_equal(got, e)  # 0: evaluation is the live actor

    features = np.random.default_rng(4).normal(size=(5, OBS)).astype(np.float32)
    mean, _ = averaged.programs.apply_actor(averaged._state["eval_actor"], features)
    np.testing.assert_allclose(averaged.act(features, deterministic=True).reshape(5, D), 1.5 * np.tanh(np.asarray(mean)), rtol=1e-6)
    live_mean = live.actor_distribution(features)[0]
    np.testing.assert_allclose(live.act(features, deterministic=True).reshape(5, D), 1.5 * np.tanh(live_mean), rtol=1e-6)
    assert not np.allclose(averaged.act(features, deterministic=True), live.act(features, deterministic=True))
    np.testing.assert_array_equal(averaged.act(features, rng=5), live.act(features, rng=5))  # exploration: the live actor


def test_a_checkpoint_from_before_the_evaluation_actor_evaluates_with_its_actor():
    agent = DSRLAgent(small_cfg(eval_average_tau=0.5), OBS, SHAPE)
    agent.update(sac_batch(np.random.default_rng(1)))
    d = agent.state_dict()
    d["state"] = {k: v for k, v in d["state"].items() if k != "eval_actor"}
    old = DSRLAgent(small_cfg(eval_average_tau=0.5), OBS, SHAPE)
    old.load_state_dict(d)
    features = np.ones((2, OBS), np.float32)
    expected = 1.5 * np.tanh(agent.actor_distribution(features)[0])
    np.testing.assert_allclose(old.act(features, deterministic=True).reshape(2, D), expected, rtol=1e-6)


@pytest.mark.parametrize("target_entropy, direction", [(-1000.0, -1), (1000.0, +1)])
def test_temperature_moves_against_the_entropy_gap(target_entropy, direction):
    cfg = small_cfg(target_entropy=target_entropy, init_temperature=0.5, learning_rate=1e-3)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    metrics = agent.update(sac_batch(np.random.default_rng(2)))
    # loss = log_alpha * (entropy - target): gradient sign = sign(entropy - target); Adam's first
    # step moves log_alpha by exactly lr against it.
    assert metrics["temperature_loss"] == pytest.approx(math.log(0.5) * (metrics["entropy"] - target_entropy), rel=1e-5)
    assert math.log(agent.temperature) == pytest.approx(math.log(0.5) + direction * 1e-3, abs=1e-6)


def test_actor_noise_shape_bounds_and_independent_dims():
    cfg = small_cfg(action_magnitude=1.5)
    agent = DSRLAgent(cfg, 13, (4, 7))
    features = np.tile(np.linspace(-1, 1, 13, dtype=np.float32), (4000, 1))
    w = agent.act(features, deterministic=False, rng=0)
    assert w.shape == (4000, 4, 7) and w.dtype == np.float32
    assert np.all(np.abs(w) <= 1.5)
    flat = w.reshape(4000, 28)
    assert np.all(flat.std(axis=0) > 0.1)
    corr = np.corrcoef(flat.T)
    assert np.max(np.abs(corr - np.eye(28))) < 0.1  # 28 independent latent dims, not one repeated vector
    det = agent.act(features[:2], deterministic=True)
    mean, _ = agent.actor_distribution(features[:2])
    assert mean.shape == (2, 28)
    np.testing.assert_allclose(det.reshape(2, 28), 1.5 * np.tanh(mean), rtol=1e-6)
    assert not np.allclose(det[0, 0], det[0, 1])
    assert agent.act(features[0], deterministic=True).shape == (4, 7)


def test_sac_ignores_transitions_without_noise():
    agent = DSRLAgent(small_cfg(), OBS, SHAPE)
    old = agent.state_dict()["state"]
    rng = np.random.default_rng(3)
    batch = sac_batch(rng, noise=np.full((64, *SHAPE), np.nan, np.float32), has_noise=np.zeros(64, bool))
    metrics = agent.update(batch)
    new = agent.state_dict()["state"]
    assert metrics["critic_loss"] == 0.0 and metrics["noise_fraction"] == 0.0
    for a, b in zip(leaves(old["critic"]), leaves(new["critic"])):
        np.testing.assert_array_equal(a, b)
    assert all(np.all(np.isfinite(x)) for x in leaves(new))
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(old["actor"]), leaves(new["actor"])))


def test_utd_steps_from_stacked_batches():
    agent = DSRLAgent(small_cfg(), OBS, SHAPE)
    rng = np.random.default_rng(4)
    stacked = {k: np.stack([v, v]) for k, v in sac_batch(rng).items()}
    agent.update(stacked)
    assert agent.step == 2
    agent.update([sac_batch(rng) for _ in range(2)])
    assert agent.step == 4
    agent.update(sac_batch(rng))
    assert agent.step == 5


def test_action_space_sac_baseline_uses_the_same_agent():
    cfg = small_cfg(action_magnitude=1.0)
    agent = DSRLAgent(cfg, OBS, (1, 7))
    low, high = np.full(7, -0.05), np.full(7, 0.05)
    w = agent.act(np.zeros((5, OBS), np.float32))
    assert w.shape == (5, 1, 7) and np.all(np.abs(w) <= 1.0)
    action = low + (w[:, 0] + 1) / 2 * (high - low)
    assert np.all((action >= low) & (action <= high))
    agent.update(sac_batch(np.random.default_rng(5), shape=(1, 7), noise=np.random.default_rng(6).uniform(-1, 1, (64, 1, 7))))
    assert agent.step == 1


def test_bad_config_is_one_clear_sentence():
    with pytest.raises(ConfigError, match="agent.algorithm='ppo' is unknown; use one of: dsrl_sac, dsrl_na."):
        DSRLAgent(small_cfg(algorithm="ppo"), OBS, SHAPE)
    with pytest.raises(ConfigError, match="agent.critic_backup"):
        DSRLAgent(small_cfg(critic_backup="max"), OBS, SHAPE)
    with pytest.raises(ConfigError, match="agent.actor_objective='max' is unknown; use min or mean."):
        DSRLAgent(small_cfg(actor_objective="max"), OBS, SHAPE)
    with pytest.raises(ConfigError, match="agent.backup_subset=-1"):
        DSRLAgent(small_cfg(backup_subset=-1), OBS, SHAPE)
    with pytest.raises(ConfigError, match=r"agent.n_step=0 must be at least 1 \(1: one-step TD targets\)."):
        DSRLAgent(small_cfg(n_step=0), OBS, SHAPE)


# ---- DSRL-NA --------------------------------------------------------------------------------------------
M = np.random.default_rng(42).normal(size=(D, D)).astype(np.float32) / np.sqrt(D) + np.eye(D, dtype=np.float32)


class LinearDenoiser:
    """A known deterministic 'base policy': chunk = w @ M + proprio[0], recording its calls."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def chunk(obs, noise):
        flat = np.asarray(noise, np.float32).reshape(len(noise), -1) @ M + obs["proprio"][:, :1]
        return flat.reshape(len(noise), *SHAPE)

    def __call__(self, obs, noise):
        self.calls.append(({k: np.array(v) for k, v in obs.items()}, np.array(noise)))
        return self.chunk(obs, noise)


def na_batch(rng, B=64, **over):
    proprio = rng.normal(size=(B, 2)).astype(np.float32)
    next_proprio = rng.normal(size=(B, 2)).astype(np.float32)
    batch = dict(
        obs={"proprio": proprio, "image": np.zeros((B, 4, 4, 3), np.uint8)},
        next_obs={"proprio": next_proprio, "image": np.zeros((B, 4, 4, 3), np.uint8)},
        features=np.concatenate([proprio, np.ones((B, 1), np.float32)], 1),
        next_features=np.concatenate([next_proprio, np.ones((B, 1), np.float32)], 1),
        actions=rng.uniform(-1, 1, (B, *SHAPE)).astype(np.float32),
        reward=rng.normal(size=B).astype(np.float32),
        terminated=np.zeros(B, bool),
        truncated=np.zeros(B, bool),
    )
    batch.update(over)
    return batch


def test_na_distillation_target_is_q_action_of_the_denoised_fresh_noise():
    cfg = small_cfg(algorithm="dsrl_na", action_magnitude=1.0, na_distill_steps=3, gamma=0.9)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    before = DSRLAgent(cfg, OBS, SHAPE)
    before.load_state_dict(agent.state_dict())
    rng = np.random.default_rng(7)
    batch = na_batch(rng, terminated=np.arange(64) % 4 == 0)  # no noise at all: NA needs none
    denoise = LinearDenoiser()
    agent.update(batch, denoise)
    info = agent.last_info
    assert len(denoise.calls) == 1 + 3
    # a' = denoise(s', w') with w' from the actor; TD on Q^A_target(s', a').
    next_obs, next_w = denoise.calls[0]
    np.testing.assert_array_equal(next_obs["proprio"], batch["next_obs"]["proprio"])
    np.testing.assert_array_equal(next_w.reshape(64, D), info["next_noise"])
    next_q = before.q_values(batch["next_features"], LinearDenoiser.chunk(batch["next_obs"], next_w), target=True)
    np.testing.assert_allclose(info["next_q"], next_q, rtol=1e-5, atol=1e-6)
    y = batch["reward"] + 0.9 * (1 - batch["terminated"]) * (next_q.min(0) - cfg.init_temperature * info["next_log_prob"])
    np.testing.assert_allclose(info["td_target"], y, rtol=1e-5, atol=1e-5)
    # Fresh w: N(0, I) clipped to the magnitude; target = Q^A(s, denoise(s, w)) per ensemble member.
    fresh = info["distill_noise"]
    assert fresh.shape == (3, 64, D) and np.all(np.abs(fresh) <= 1.0)
    assert 0.15 < np.mean(np.abs(fresh) == 1.0) < 0.5  # P(|z| > 1) = 0.32 of the draws sit on the clip
    for k in range(3):
        obs, w = denoise.calls[1 + k]
        np.testing.assert_array_equal(obs["proprio"], batch["obs"]["proprio"])
        np.testing.assert_array_equal(w.reshape(64, D), fresh[k])
        expected = agent.q_values(batch["features"], LinearDenoiser.chunk(batch["obs"], w))  # the updated Q^A
        np.testing.assert_allclose(info["distill_target"][k], expected, rtol=1e-5, atol=1e-6)


def test_na_learns_from_noise_free_transitions():
    """A one-step bandit whose data are demos (actions, no noise): reward = -||a - a*||^2."""
    cfg = small_cfg(algorithm="dsrl_na", action_magnitude=1.0, learning_rate=3e-3, init_temperature=0.01, target_entropy=-20.0)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    w_star = np.array([0.6, -0.5, 0.3, 0.7, -0.2, 0.4], np.float32)
    obs0 = {"proprio": np.zeros((1, 2), np.float32)}
    a_star = LinearDenoiser.chunk(obs0, w_star[None])[0]
    f0 = np.array([[0.0, 0.0, 1.0]], np.float32)

    def dist():
        return float(np.linalg.norm(LinearDenoiser.chunk(obs0, agent.act(f0, deterministic=True)) - a_star))

    start = dist()
    rng = np.random.default_rng(8)
    denoise = LinearDenoiser.chunk
    for _ in range(100):
        batches = []
        for _ in range(4):
            b = na_batch(rng, 64, terminated=np.ones(64, bool))
            b["obs"]["proprio"][:] = 0
            b["features"][:] = f0
            b["actions"] = rng.uniform(-1.5, 1.5, (64, *SHAPE)).astype(np.float32)
            b["reward"] = -np.sum((b["actions"] - a_star) ** 2, axis=(1, 2))
            batches.append(b)
        metrics = agent.update(batches, denoise)
    assert agent.step == 400 and np.isfinite(metrics["distill_loss"])
    assert dist() < 0.3 * start


def test_sac_sanity_bandit_moves_towards_the_best_noise():
    cfg = small_cfg(learning_rate=3e-3, init_temperature=0.1, target_entropy=0.0, action_magnitude=1.0)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    w_star = np.array([0.6, -0.5, 0.3, 0.7, -0.2, 0.4], np.float32).reshape(SHAPE)
    f0 = np.array([[0.5, -0.5, 1.0]], np.float32)
    start = np.linalg.norm(agent.act(f0, deterministic=True)[0] - w_star)
    rng = np.random.default_rng(9)
    for _ in range(300):
        noise = rng.uniform(-1, 1, (2, 64, *SHAPE)).astype(np.float32)
        agent.update(dict(
            features=np.broadcast_to(f0, (2, 64, OBS)), next_features=np.broadcast_to(f0, (2, 64, OBS)), noise=noise,
            has_noise=np.ones((2, 64), bool), reward=-np.sum((noise - w_star) ** 2, axis=(2, 3)),
            terminated=np.ones((2, 64), bool), truncated=np.zeros((2, 64), bool),
        ))
    assert agent.step == 600
    assert np.linalg.norm(agent.act(f0, deterministic=True)[0] - w_star) < 0.25 * start


def qw_leaves(agent):
    return leaves(agent.state_dict()["state"]["qw"])


def test_na_distills_only_on_every_nth_global_step():
    """na_distill_every=3: gradient steps 0 and 3 of 0..5 distil (2 regression steps each, 2 fresh
    sampler calls); every step calls the sampler once for a'. 6 + 2 * 2 = 10 calls in all."""
    cfg = small_cfg(algorithm="dsrl_na", na_distill_every=3, na_distill_steps=2)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    rng = np.random.default_rng(20)
    batches = [na_batch(rng, 32) for _ in range(6)]
    denoise = LinearDenoiser()
    last_distill_loss = None
    for step, batch in enumerate(batches):
        old = agent.state_dict()["state"]
        before = len(denoise.calls)
        metrics = agent.update(batch, denoise)
        new = agent.state_dict()["state"]
        distilled = step % 3 == 0
        calls = denoise.calls[before:]
        assert len(calls) == (3 if distilled else 1)
        np.testing.assert_array_equal(calls[0][0]["proprio"], batch["next_obs"]["proprio"])  # a' = denoise(s', w')
        for obs, _ in calls[1:]:
            np.testing.assert_array_equal(obs["proprio"], batch["obs"]["proprio"])  # fresh w on s
        qw_moved = [not np.array_equal(a, b) for a, b in zip(leaves(old["qw"]), leaves(new["qw"]))]
        assert all(qw_moved) if distilled else not any(qw_moved)
        assert all(leaves(old["opt_qw"])[i].shape == x.shape for i, x in enumerate(leaves(new["opt_qw"])))
        if not distilled:
            for a, b in zip(leaves(old["opt_qw"]), leaves(new["opt_qw"])):
                np.testing.assert_array_equal(a, b)
        # Q^A and the actor learn on every step.
        assert any(not np.array_equal(a, b) for a, b in zip(leaves(old["critic"]), leaves(new["critic"])))
        assert any(not np.array_equal(a, b) for a, b in zip(leaves(old["actor"]), leaves(new["actor"])))
        assert ("distill_noise" in agent.last_info) == distilled and ("distill_target" in agent.last_info) == distilled
        if distilled:
            assert agent.last_info["distill_noise"].shape == (2, 32, D)
            last_distill_loss = metrics["distill_loss"]
        assert np.isfinite(metrics["distill_loss"]) and metrics["distill_loss"] == last_distill_loss  # carried over
    assert len(denoise.calls) == 6 + 2 * 2 and agent.step == 6

    # The schedule follows the global step counter, not the grouping into update() calls.
    grouped = DSRLAgent(cfg, OBS, SHAPE)
    counting = LinearDenoiser()
    grouped.update(batches[0], counting)  # step 0
    grouped.update({k: (np.stack([b[k] for b in batches[1:3]]) if k not in ("obs", "next_obs")
                        else {o: np.stack([b[k][o] for b in batches[1:3]]) for o in batches[0][k]})
                    for k in batches[0]}, counting)  # steps 1, 2 (stacked)
    grouped.update(batches[3:], counting)  # steps 3, 4, 5 (a list)
    assert len(counting.calls) == 10
    for a, b in zip(leaves(agent.state_dict()["state"]), leaves(grouped.state_dict()["state"])):
        np.testing.assert_array_equal(a, b)


def test_na_distill_every_one_calls_the_sampler_one_plus_distill_steps_times_per_step():
    cfg = small_cfg(algorithm="dsrl_na", na_distill_every=1, na_distill_steps=3)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    rng = np.random.default_rng(21)
    denoise = LinearDenoiser()
    agent.update([na_batch(rng, 32) for _ in range(4)], denoise)
    assert len(denoise.calls) == 4 * (1 + 3)
    old = qw_leaves(agent)
    agent.update(na_batch(rng, 32), denoise)
    assert len(denoise.calls) == 5 * (1 + 3) and "distill_noise" in agent.last_info
    assert all(not np.array_equal(a, b) for a, b in zip(old, qw_leaves(agent)))


def test_na_state_dict_round_trip_mid_schedule_continues_identically(tmp_path):
    cfg = small_cfg(algorithm="dsrl_na", na_distill_every=3, na_distill_steps=2)
    rng = np.random.default_rng(22)
    agent = DSRLAgent(cfg, OBS, SHAPE)
    agent.update([na_batch(rng, 32) for _ in range(4)], LinearDenoiser.chunk)  # steps 0..3; next: 4, 5 plain, 6 distils
    path = agent.save(tmp_path / "agent.msgpack")
    twin = DSRLAgent(dataclasses.replace(cfg, seed=123), OBS, SHAPE)
    twin.load_state_dict(agent.state_dict())
    from_file = DSRLAgent.from_checkpoint(path)
    assert from_file.cfg.na_distill_every == 3
    batches = [na_batch(rng, 32) for _ in range(3)]
    counting = LinearDenoiser()
    expected = agent.update(batches, counting)
    assert len(counting.calls) == 3 + 2 and np.isfinite(expected["distill_loss"])
    for other in (twin, from_file):
        counting = LinearDenoiser()
        assert other.update(batches, counting) == expected
        assert len(counting.calls) == 3 + 2
        for a, b in zip(leaves(agent.state_dict()["state"]), leaves(other.state_dict()["state"])):
            np.testing.assert_array_equal(a, b)
    assert agent.step == 7
    # A checkpoint written before na_distill_every existed (no distill_loss in the state) still loads.
    old = agent.state_dict()
    old["state"] = {k: v for k, v in old["state"].items() if k != "distill_loss"}
    legacy = DSRLAgent(cfg, OBS, SHAPE)
    legacy.load_state_dict(old)
    assert legacy.step == 7 and math.isnan(legacy.update(na_batch(rng, 32), LinearDenoiser.chunk)["distill_loss"])


def test_na_distill_every_must_be_a_positive_integer():
    for bad in (0, -2):
        with pytest.raises(ConfigError, match=f"agent.na_distill_every={bad} must be an integer of at least 1"):
            DSRLAgent(small_cfg(algorithm="dsrl_na", na_distill_every=bad), OBS, SHAPE)
    agent = DSRLAgent(small_cfg(algorithm="dsrl_na"), OBS, SHAPE)
    agent.cfg = dataclasses.replace(agent.cfg, na_distill_every=0)  # changed during a run
    with pytest.raises(ConfigError, match="agent.na_distill_every=0"):
        agent.update(na_batch(np.random.default_rng(23), 16), LinearDenoiser.chunk)


def test_agent_defaults_are_the_sim_cpu_preset():
    from dsrl_real.config import PRESETS, Config

    defaults = Config()
    for key, value in PRESETS["sim_cpu"].items():
        section, name = key.split(".")
        assert getattr(getattr(defaults, section), name) == value, key
    assert (defaults.agent.batch_size, defaults.agent.na_distill_steps, defaults.agent.na_distill_every) == (128, 5, 10)


# ---- checkpoints --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_state_dict_round_trip_continues_identically(algorithm, tmp_path):
    cfg = small_cfg(algorithm=algorithm)
    rng = np.random.default_rng(10)
    make = na_batch if algorithm == "dsrl_na" else sac_batch
    if algorithm == "dsrl_na":
        denoise = LinearDenoiser.chunk
    else:
        denoise = None
    agent = DSRLAgent(cfg, OBS, SHAPE)
    for _ in range(2):
        agent.update(make(rng), denoise)
    agent.act(np.zeros((2, OBS), np.float32))  # advance the acting stream too
    path = agent.save(tmp_path / "agent.msgpack")
    twin = DSRLAgent(dataclasses.replace(cfg, seed=123), OBS, SHAPE)
    twin.load_state_dict(agent.state_dict())
    from_file = DSRLAgent.from_checkpoint(path)
    features = np.random.default_rng(11).normal(size=(5, OBS)).astype(np.float32)
    batch = make(rng)
    expected_det = agent.act(features, deterministic=True)
    expected_sto = agent.act(features)
    expected_metrics = agent.update(batch, denoise)
    for other in (twin, from_file):
        np.testing.assert_array_equal(other.act(features, deterministic=True), expected_det)
        np.testing.assert_array_equal(other.act(features), expected_sto)
        assert other.update(batch, denoise) == expected_metrics
        for a, b in zip(leaves(agent.state_dict()["state"]), leaves(other.state_dict()["state"])):
            np.testing.assert_array_equal(a, b)
    assert agent.step == 3
    with pytest.raises(ValueError, match="noise_shape"):
        DSRLAgent(small_cfg(), OBS, (1, 7)).load_state_dict(agent.state_dict())


def test_trains_from_replay_batches_with_demos_and_frames():
    from dsrl_real.data.replay import ReplayBuffer

    rng = np.random.default_rng(12)
    buf = ReplayBuffer(capacity=500)
    for ep in range(6):
        T = 5 + ep
        proprio = rng.normal(size=(T + 1, 2)).astype(np.float32)
        obs = {"proprio": proprio, "image": rng.integers(0, 255, (T + 1, 4, 4, 3), dtype=np.uint8)}
        features = np.concatenate([proprio, np.ones((T + 1, 1), np.float32)], 1)
        noise = None if ep % 2 else rng.uniform(-1, 1, (T, *SHAPE))  # odd episodes are demos
        buf.add_episode(obs, features, noise, rng.normal(size=(T, *SHAPE)), rng.normal(size=T), ep % 3 == 0, ep % 3 != 0)
    sac = DSRLAgent(small_cfg(), OBS, SHAPE)
    metrics = sac.update(buf.sample(64, rng, num_batches=2, include_obs=False))
    assert sac.step == 2 and 0 < metrics["noise_fraction"] < 1 and np.isfinite(metrics["critic_loss"])
    na = DSRLAgent(small_cfg(algorithm="dsrl_na"), OBS, SHAPE)
    metrics = na.update(buf.sample(64, rng, num_batches=2), LinearDenoiser())
    assert na.step == 2 and all(np.isfinite(v) for v in metrics.values())
