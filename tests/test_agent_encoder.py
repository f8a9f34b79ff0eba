"""The DSRL agent's own image encoder (agent.features=observation with cameras): pixel SAC as in DrQ / SAC-AE.

Every agent here has the structure and shapes of the tiny trainer at the end (proprio + object state,
two 16x16 cameras, chunk 4 x 7, the Bridge action bounds, batch 8), so all tests share its compiled programs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import STATE

from dsrl_real.agents.dsrl import DSRLAgent
from dsrl_real.agents.dsrl.batches import prepare
from dsrl_real.agents.dsrl.distributions import tanh_gaussian_sample
from dsrl_real.agents.dsrl.encoder import ImageEncoder, augment, random_shift
from dsrl_real.agents.dsrl.spec import hyperparams
from dsrl_real.agents.dsrl.updates import actor_update
from dsrl_real.config import AgentConfig, ConfigError
from dsrl_real.policies.examples import ScaledNoisePolicy

OBS, SHAPE, D = 7 + 6, (4, 7), 28
BOUNDS = (ScaledNoisePolicy.LOW, ScaledNoisePolicy.HIGH)  # the simulated WidowX's action space
CAMS = {"front_image": (16, 16, 3), "wrist_image": (16, 16, 3)}
B = 8


def enc_cfg(**over) -> AgentConfig:
    base = dict(features="observation", hidden_dim=16, num_layers=1, num_critics=2, encoder_channels=[4, 8], encoder_dim=8,
                batch_size=B, na_distill_steps=2, na_distill_every=1, backup_entropy=True, init_temperature=0.5, action_magnitude=1.5)
    base.update(over)
    return AgentConfig(**base)


def make_agent(cfg=None) -> DSRLAgent:
    return DSRLAgent(cfg or enc_cfg(), OBS, SHAPE, action_bounds=BOUNDS, image_shapes=CAMS)


def copy_of(agent) -> DSRLAgent:
    twin = DSRLAgent(dataclasses.replace(agent.cfg, seed=99), OBS, SHAPE, action_bounds=BOUNDS, image_shapes=CAMS)
    twin.load_state_dict(agent.state_dict())
    return twin


def frames(rng, n=B):
    return {k: rng.integers(0, 256, (n, *s), dtype=np.uint8) for k, s in CAMS.items()}


def batch(rng, **over):
    out = dict(
        features=rng.normal(size=(B, OBS)).astype(np.float32),
        next_features=rng.normal(size=(B, OBS)).astype(np.float32),
        noise=rng.uniform(-1.4, 1.4, (B, *SHAPE)).astype(np.float32),
        has_noise=np.ones(B, bool),
        actions=rng.uniform(BOUNDS[0], BOUNDS[1], (B, *SHAPE)).astype(np.float32),
        reward=rng.normal(size=B).astype(np.float32),
        terminated=np.arange(B) % 3 == 0,
        truncated=np.zeros(B, bool),
        obs=frames(rng),
        next_obs=frames(rng),
    )
    out.update(over)
    return out


def denoise(obs, noise):
    return np.clip(0.02 * np.asarray(noise, np.float32), BOUNDS[0], BOUNDS[1])


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))


def shifted(agent, frames_by_key, which):
    """The frames as the agent's next gradient step augments them (keys split from its augmentation stream)."""
    _, k_obs, k_next = jax.random.split(agent._state["aug_rng"], 3)
    return {k: np.asarray(v) for k, v in augment(frames_by_key, k_obs if which == "obs" else k_next, 4, agent.image_keys).items()}


# ---- the encoder and the augmentation ------------------------------------------------------------------
def test_encoder_output_and_the_agents_shapes():
    rng = np.random.default_rng(0)
    agent = make_agent()
    assert agent.image_keys == ("front_image", "wrist_image") and agent.obs_dim == OBS and agent.programs.model.inputs.dim == OBS + 2 * 8
    assert isinstance(agent.programs.model.inputs.encoder, ImageEncoder)
    features, images = rng.normal(size=(B, OBS)).astype(np.float32), frames(rng)
    net_in = np.asarray(agent._net_features(features, images))
    np.testing.assert_array_equal(net_in[:, :OBS], features)  # the vector features, then 8 per camera
    z = net_in[:, OBS:]
    assert z.shape == (B, 16) and np.all(np.abs(z) < 1)  # tanh of a LayerNorm per camera
    np.testing.assert_allclose(np.arctanh(z[:, :8]).mean(axis=1), 0, atol=1e-3)
    np.testing.assert_allclose(np.arctanh(z[:, 8:]).mean(axis=1), 0, atol=1e-3)
    w = agent.act(features, images=images)
    assert w.shape == (B, *SHAPE) and w.dtype == np.float32 and np.all(np.abs(w) <= 1.5)
    single = agent.act(features[0], images={k: v[0] for k, v in images.items()})
    assert single.shape == SHAPE
    mean, log_std = agent.actor_distribution(features, images=images)
    assert mean.shape == log_std.shape == (B, D)
    assert agent.q_values(features, np.zeros((B, *SHAPE)), images=images).shape == (2, B)
    with pytest.raises(KeyError, match="reads camera frames 'wrist_image', which act\\(\\)'s images lack"):
        agent.act(features, images={"front_image": images["front_image"]})


def test_random_shift_is_a_replicate_padded_crop_deterministic_in_the_key():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (32, 12, 10, 3), dtype=np.uint8)
    key = jax.random.PRNGKey(3)
    out = np.asarray(random_shift(jnp.asarray(images), key, 4))
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(random_shift(jnp.asarray(images), key, 4)))  # same key, same shift
    assert not np.array_equal(out, np.asarray(random_shift(jnp.asarray(images), jax.random.PRNGKey(4), 4)))
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    offsets = []
    for img, pad in zip(out, padded):
        found = [(dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(img, pad[dy:dy + 12, dx:dx + 10])]
        assert len(found) == 1  # each image is exactly one shift by -4..4 px of its own input, borders replicated
        offsets.append(found[0])
    assert len(set(offsets)) > 10  # every image gets its own shift
    np.testing.assert_array_equal(np.asarray(random_shift(jnp.asarray(images), key, 0)), images)


def test_augmentation_is_off_when_acting():
    rng = np.random.default_rng(2)
    agent = make_agent()
    agent.update(batch(rng))
    features, images = rng.normal(size=(B, OBS)).astype(np.float32), frames(rng)
    mean, _ = agent.actor_distribution(features, images=images)  # the frames as given
    np.testing.assert_allclose(agent.act(features, True, images=images).reshape(B, D), 1.5 * np.tanh(mean), rtol=1e-6)
    np.testing.assert_array_equal(agent.act(features, rng=5, images=images), agent.act(features, rng=5, images=images))


# ---- who trains the encoder ----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_the_critic_trains_the_encoder_and_the_actor_does_not(algorithm):
    rng = np.random.default_rng(3)
    agent = make_agent(enc_cfg(algorithm=algorithm))
    old = agent.state_dict()["state"]
    agent.update(batch(rng), denoise)
    new = agent.state_dict()["state"]
    assert all(not np.array_equal(a, b) for a, b in zip(leaves(old["encoder"]), leaves(new["encoder"])))  # every parameter
    if algorithm == "dsrl_na":
        assert not same(old["qw"], new["qw"])  # Q^W distilled on the shared encoder's features

    # SAC on rows without noise: the critic's loss is zero, so only the actor (and temperature) learn.
    sac = make_agent()
    old = sac.state_dict()["state"]
    sac.update(batch(rng, noise=np.full((B, *SHAPE), np.nan, np.float32), has_noise=np.zeros(B, bool)))
    new = sac.state_dict()["state"]
    assert not same(old["actor"], new["actor"])
    for part in ("encoder", "target_encoder", "critic"):
        assert same(old[part], new[part]), part
    assert same(old["opt_encoder"]["mu"], new["opt_encoder"]["mu"]) and same(old["opt_encoder"]["nu"], new["opt_encoder"]["nu"])


def test_the_actors_gradient_with_respect_to_the_encoder_is_zero():
    agent = make_agent()
    agent.update(batch(np.random.default_rng(4)))  # away from the initial parameters
    model, state, hp = agent.programs.model, agent._state, hyperparams(agent.cfg)
    step = {k: jnp.asarray(v) for k, v in prepare(agent.spec, batch(np.random.default_rng(5))).items()}

    @jax.jit
    def actor_loss_grad(encoder):  # the actor's part of a gradient step, as the step computes it
        def actor_loss(encoder):
            s = {**state, "encoder": encoder}
            images = model.inputs.for_training(s, step).images
            features = model.inputs.for_actor(s, step["features"], images)
            return actor_update(model, s, features, jax.random.PRNGKey(0), s["critic"], hp)[1]["actor_loss"]

        return jax.value_and_grad(actor_loss)(encoder)

    loss, grads = actor_loss_grad(state["encoder"])
    assert np.isfinite(loss) and loss != 0
    assert all(np.all(g == 0) for g in leaves(grads))


def test_target_encoder_follows_by_polyak_and_the_td_target_reads_the_shifted_next_frames():
    rng = np.random.default_rng(6)
    agent = make_agent(enc_cfg(tau=0.1, gamma=0.9))
    agent.update([batch(rng), batch(rng)])  # target and online encoders now differ
    before = copy_of(agent)
    old = agent.state_dict()["state"]
    b = batch(rng)
    next_frames = shifted(agent, b["next_obs"], "next_obs")
    assert not all(np.array_equal(next_frames[k], b["next_obs"][k]) for k in CAMS)
    agent.update(b)
    new = agent.state_dict()["state"]
    for t0, e1, t1 in zip(leaves(old["target_encoder"]), leaves(new["encoder"]), leaves(new["target_encoder"]), strict=True):
        np.testing.assert_allclose(t1, 0.9 * t0 + 0.1 * e1, rtol=1e-6, atol=1e-7)
    assert not same(new["target_encoder"], new["encoder"])
    # TD target: w' from the actor on the online encoder's features of the shifted next frames,
    # Q from the target critic on the target encoder's features of the same frames.
    info = agent.last_info
    mean, log_std = before.actor_distribution(b["next_features"], images=next_frames)
    eps = np.asarray(jax.random.normal(jax.random.split(old["rng"], 3)[1], (B, D)))  # the step's key for w'
    w, logp = (np.asarray(x) for x in tanh_gaussian_sample(mean, log_std, eps, 1.5))
    np.testing.assert_allclose(info["next_noise"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info["next_log_prob"], logp, rtol=1e-5, atol=1e-4)
    next_q = before.q_values(b["next_features"], w, target=True, images=next_frames)
    np.testing.assert_allclose(info["next_q"], next_q, rtol=1e-5, atol=1e-6)
    online = before.programs.apply_critic(old["target_critic"], before._net_features(b["next_features"], next_frames), jnp.asarray(w))
    assert np.max(np.abs(np.asarray(online) - next_q)) > 1e-4  # the online encoder would give another target
    unshifted = before.q_values(b["next_features"], w, target=True, images=b["next_obs"])
    assert np.max(np.abs(unshifted - next_q)) > 1e-4  # and so would the frames without the shift
    y = b["reward"] + 0.9 * (1 - b["terminated"]) * (next_q.min(0) - before.temperature * logp)
    np.testing.assert_allclose(info["td_target"], y, rtol=1e-5, atol=1e-5)


def test_na_distills_q_w_onto_q_a_through_the_shared_encoder():
    rng = np.random.default_rng(7)
    agent = make_agent(enc_cfg(algorithm="dsrl_na"))
    b = batch(rng)
    obs_frames = shifted(agent, b["obs"], "obs")
    agent.update(b, denoise)
    info = agent.last_info
    for k in range(2):  # targets: the updated Q^A on the updated encoder's features of shifted s, a = denoise(s, fresh w)
        expected = agent.q_values(b["features"], denoise(None, info["distill_noise"][k].reshape(B, *SHAPE)), images=obs_frames)
        np.testing.assert_allclose(info["distill_target"][k], expected, rtol=1e-5, atol=1e-6)
    assert agent.qw_values(b["features"], b["noise"], images=b["obs"]).shape == (2, B)


# ---- frames stay uint8 ---------------------------------------------------------------------------------------
def test_frames_reach_the_jitted_step_as_the_uint8_arrays_sampled(monkeypatch):
    from dsrl_real.data.replay import ReplayBuffer

    rng = np.random.default_rng(8)
    buf = ReplayBuffer(100)
    for _ in range(2):
        T = 6
        buf.add_episode({"proprio": rng.normal(size=(T + 1, 7)).astype(np.float32), **frames(rng, T + 1)},
                        rng.normal(size=(T + 1, OBS)), rng.uniform(-1, 1, (T, *SHAPE)), denoise(None, rng.normal(size=(T, *SHAPE))),
                        rng.normal(size=T), False, True)
    agent = make_agent()
    seen = []
    real_step = agent.programs.sac_step
    monkeypatch.setattr(agent.programs, "sac_step", lambda state, step, hp: (seen.append(step), real_step(state, step, hp))[1])
    sampled = buf.sample(B, rng, num_batches=2)
    agent.update(sampled)
    assert len(seen) == 2 and agent.step == 2
    for i, step in enumerate(seen):
        for k in CAMS:
            for prefix, source in (("images/", "obs"), ("next_images/", "next_obs")):
                x = step[prefix + k]
                assert x.dtype == np.uint8 and x.shape == (B, *CAMS[k])
                assert np.shares_memory(x, sampled[source][k])  # a view of the sampled batch: no host copy
                np.testing.assert_array_equal(x, sampled[source][k][i])
    monkeypatch.undo()
    floats = batch(rng)
    floats["obs"] = {k: v.astype(np.float32) for k, v in floats["obs"].items()}
    with pytest.raises(ValueError, match=r"^Camera frames 'front_image' must be uint8 for the agent's image encoder \(got float32\)"):
        agent.update(floats)
    with pytest.raises(KeyError, match="needs the camera frames 'obs' in the batch"):
        agent.update({k: v for k, v in batch(rng).items() if k != "obs"})


# ---- checkpoints ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["dsrl_sac", "dsrl_na"])
def test_checkpoint_round_trip_acts_and_continues_identically(algorithm, tmp_path):
    rng = np.random.default_rng(9)
    agent = make_agent(enc_cfg(algorithm=algorithm))
    agent.update([batch(rng), batch(rng)], denoise)
    agent.act(np.zeros((B, OBS), np.float32), images=frames(rng))  # advance the acting stream
    state = agent.state_dict()["state"]
    assert {"encoder", "target_encoder", "opt_encoder", "aug_rng"} <= set(state)
    assert not same(state["encoder"], state["target_encoder"])
    path = agent.save(tmp_path / "agent.msgpack")
    twin, from_file = copy_of(agent), DSRLAgent.from_checkpoint(path)
    assert from_file.image_shapes == CAMS and from_file.cfg.encoder_channels == [4, 8]
    features, images, b = rng.normal(size=(B, OBS)).astype(np.float32), frames(rng), batch(rng)
    expected = (agent.act(features, True, images=images), agent.act(features, images=images), agent.update([b, b], denoise))
    for other in (twin, from_file):
        np.testing.assert_array_equal(other.act(features, True, images=images), expected[0])
        np.testing.assert_array_equal(other.act(features, images=images), expected[1])
        assert other.update([b, b], denoise) == expected[2]
        assert same(agent.state_dict()["state"], other.state_dict()["state"])


def test_a_checkpoint_of_one_features_mode_refuses_the_other():
    encoder_agent = make_agent()
    vector_agent = DSRLAgent(enc_cfg(features="policy_embedding"), OBS, SHAPE, action_bounds=BOUNDS)
    with pytest.raises(ValueError, match=r"^The agent checkpoint was trained with agent.features=observation, but the config says "
                                         r"policy_embedding; set agent.features=observation to continue it or start a new run.$"):
        vector_agent.load_state_dict(encoder_agent.state_dict())
    with pytest.raises(ValueError, match=r"^The agent checkpoint was trained with agent.features=policy_embedding, but the config"):
        encoder_agent.load_state_dict(vector_agent.state_dict())
    one_camera = {**encoder_agent.state_dict(), "image_shapes": {"front_image": [16, 16, 3]}}
    with pytest.raises(ValueError, match=r"^The agent checkpoint's image encoder reads cameras \{'front_image': \[16, 16, 3\]\}, but"):
        encoder_agent.load_state_dict(one_camera)
    with pytest.raises(ConfigError, match=r"^Camera frames for the agent's own image encoder need agent.features=observation"):
        DSRLAgent(enc_cfg(features="policy_embedding"), OBS, SHAPE, image_shapes=CAMS)
    with pytest.raises(ConfigError, match="agent.image_augmentation='crop' is unknown; use one of: shift, none."):
        make_agent(enc_cfg(image_augmentation="crop"))
    with pytest.raises(ValueError, match="no image encoder"):
        vector_agent.act(np.zeros(OBS, np.float32), images={"front_image": np.zeros((16, 16, 3), np.uint8)})


# ---- the trainer ---------------------------------------------------------------------------------------------
FAST = [*STATE, "policy.external=dsrl_real.policies.examples:scaled_noise_policy", "train.wandb=disabled", "train.eval_episodes=1",
        "train.eval_every_steps=100000", "train.warm_start_episodes=1", "task.max_steps=12",
        "cameras=[{name: front, view: third_person, width: 16, height: 16}, {name: wrist, view: wrist, width: 16, height: 16}]",
        "agent.features=observation", "agent.hidden_dim=16", "agent.num_layers=1", "agent.num_critics=2", "agent.batch_size=8",
        "agent.utd=2", "agent.encoder_channels=[4, 8]", "agent.encoder_dim=8", "agent.na_distill_steps=2"]


def test_trainer_runs_warm_start_updates_and_evaluation_on_camera_frames(tmp_path):
    from dsrl_real.config import load_config
    from dsrl_real.train.trainer import DSRLTrainer

    cfg = load_config(overrides=[*FAST, f"train.out_dir={tmp_path}", "train.env_steps=24"])
    trainer = DSRLTrainer(cfg)
    assert trainer.features.image_keys == ["front_image", "wrist_image"] and trainer.agent.image_shapes == CAMS
    assert trainer.agent.obs_dim == OBS  # proprio + object state; the frames go through the agent's encoder
    old = trainer.agent.state_dict()["state"]["encoder"]
    result = trainer.run()
    # 2 episodes of 3 chunk steps; from the warm start on, one update of utd 2 steps per chunk step.
    assert result["episodes"] == 2 and trainer.agent.step == 2 * 3 * 2 and 0.0 <= result["final_success_rate"] <= 1.0
    assert not same(old, trainer.agent.state_dict()["state"]["encoder"])
    sampled = trainer.buffer.sample(4, np.random.default_rng(0))
    assert sampled["obs"]["front_image"].dtype == np.uint8 and sampled["features"].shape == (4, OBS)
    resumed = DSRLTrainer(cfg)
    assert resumed.restore() and same(resumed.agent.state_dict()["state"], trainer.agent.state_dict()["state"])

    with pytest.raises(ConfigError, match=r"agent.encoder_image_keys \['top_image'\] are not camera observations; use some of: front"):
        DSRLTrainer(load_config(overrides=[*FAST, f"train.out_dir={tmp_path / 'x'}", "agent.encoder_image_keys=[top_image]"]))
