import jax
import numpy as np
import pytest

from dsrl_real.config import PolicyConfig, PretrainConfig
from dsrl_real.data.episodes import Episode, save_episode
from dsrl_real.envs.make import make_sim_env
from dsrl_real.policies.base import BasePolicy
from dsrl_real.policies.checkpoint import CheckpointError, check_fits, load_policy, read_checkpoint, save_policy
from dsrl_real.policies.diffusion import (
    ConvEncoder,
    DiffusionPolicy,
    Normalization,
    cosine_alpha_bars,
    ddim_timesteps,
    init_params,
)
from dsrl_real.policies.pretrain import POLICY_FILE, Pretrainer, chunk_dataset
from dsrl_real.recording import load_episodes
from dsrl_real.rollout import Transitions, run_episode, scripted_expert
from dsrl_real.storage import write_checked_msgpack

LOW = np.array([-0.05] * 3 + [-0.25] * 3 + [0.0], np.float32)
HIGH = -LOW + np.array([0] * 6 + [1.0], np.float32)


STATE_VECTORS = ("proprio", "object_state")  # the demos have no cameras: state mode's vectors


def random_policy(image_keys=(), seed=0, **cfg_kwargs) -> tuple[DiffusionPolicy, dict]:
    cfg = PolicyConfig(vector_keys=list(STATE_VECTORS), image_keys=list(image_keys), hidden_dim=32, embed_dim=16, conv_channels=[4, 4],
                       **cfg_kwargs)
    rng = np.random.default_rng(seed)
    obs = {"proprio": rng.normal(size=(3, 7)).astype(np.float32), "object_state": rng.normal(size=(3, 6)).astype(np.float32)}
    obs.update({k: rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8) for k in image_keys})
    norm = Normalization.fit({k: obs[k] for k in cfg.vector_keys}, rng.uniform(LOW, HIGH, (50, 7)), LOW, HIGH)
    shell = DiffusionPolicy(cfg, 7, norm, None)
    params = init_params(cfg, 7, {k: v[:1] for k, v in shell.prepare(obs).items()}, jax.random.PRNGKey(seed))
    return DiffusionPolicy(cfg, 7, norm, params, {k: v.shape[1:] for k, v in obs.items()}), obs


def test_schedule_and_ddim_timesteps():
    ab = cosine_alpha_bars(100)
    assert ab.shape == (100,) and np.all(np.diff(ab) < 0) and 0.99 < ab[0] < 1 and ab[-1] < 1e-3
    np.testing.assert_array_equal(ddim_timesteps(100, 8), [99, 85, 71, 57, 42, 28, 14, 0])
    np.testing.assert_array_equal(ddim_timesteps(100, 1), [99])
    with pytest.raises(ValueError, match="inference_steps must be in"):
        ddim_timesteps(100, 0)


@pytest.mark.parametrize("image_keys", [(), ("third_person_image",)])
def test_same_noise_same_chunk_different_noise_different_chunk(image_keys):
    policy, obs = random_policy(image_keys)
    assert isinstance(policy, BasePolicy) and policy.noise_shape == (4, 7)
    noise = np.random.default_rng(1).standard_normal((3, 4, 7)).astype(np.float32)
    a, b = policy.sample(obs, noise), policy.sample(obs, noise.copy())
    assert a.shape == (3, 4, 7) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # bit-identical
    c = policy.sample(obs, noise + 0.5)
    assert not np.allclose(a, c)
    assert policy.embed(obs).shape == (3, 16)


def test_outputs_respect_action_bounds_for_any_noise():
    policy, obs = random_policy()
    for scale in (1.0, 10.0, 1e4):
        noise = scale * np.random.default_rng(2).standard_normal((3, 4, 7)).astype(np.float32)
        chunk = policy.sample(obs, noise)
        assert np.all(chunk >= LOW) and np.all(chunk <= HIGH)


def test_wrong_noise_shape_is_a_clear_error():
    policy, obs = random_policy()
    with pytest.raises(ValueError, match=r"the policy expects \(batch, 4, 7\)"):
        policy.sample(obs, np.zeros((3, 7)))


def test_save_load_round_trips_exactly(tmp_path):
    policy, obs = random_policy(("wrist_image",))
    path = save_policy(tmp_path / "p.msgpack", policy)
    loaded = load_policy(path)
    assert loaded.cfg == policy.cfg and loaded.input_shapes == policy.input_shapes
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(policy.params), jax.device_get(loaded.params))
    noise = np.random.default_rng(3).standard_normal((3, 4, 7)).astype(np.float32)
    np.testing.assert_array_equal(policy.sample(obs, noise), loaded.sample(obs, noise))
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left nothing behind


def test_missing_corrupt_and_foreign_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="No dsrl_real policy checkpoint at"):
        load_policy(tmp_path / "nope.msgpack")
    policy, _ = random_policy()
    path = save_policy(tmp_path / "p.msgpack", policy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_policy(path)
    from flax import serialization

    (tmp_path / "other.msgpack").write_bytes(serialization.msgpack_serialize({"weights": np.zeros(3)}))
    with pytest.raises(CheckpointError, match="is not a dsrl_real policy checkpoint"):
        load_policy(tmp_path / "other.msgpack")


def test_policy_that_does_not_fit_the_env_is_one_sentence():
    policy, _ = random_policy(("third_person_image",))
    env = make_sim_env(cameras=("third_person",), image_size=32, seed=0)
    with pytest.raises(CheckpointError, match=r"trained on 'third_person_image' of shape \(16, 16, 3\), but the environment gives \(32, 32, 3\)"):
        check_fits(policy, env.observation_space, env.action_space)
    state_env = make_sim_env(cameras=(), seed=0)
    with pytest.raises(CheckpointError, match="needs observation 'third_person_image'"):
        check_fits(policy, state_env.observation_space, state_env.action_space)


def test_chunks_past_the_episode_end_repeat_the_last_action():
    actions = np.arange(3 * 7, dtype=np.float32).reshape(3, 7)
    ep = Episode({"proprio": np.zeros((4, 7), np.float32)}, actions, np.zeros(3, np.float32))
    data = chunk_dataset([ep], ["proprio"], chunk_size=4)
    assert data.chunks.shape == (3, 4, 7)
    np.testing.assert_array_equal(data.chunks[1], actions[[1, 2, 2, 2]])
    np.testing.assert_array_equal(data.chunks[2], actions[[2, 2, 2, 2]])


def recorded(env, act, seed):
    """One episode of `act` as an `.npz` Episode."""
    transitions = Transitions()
    run_episode(env, act, seed=seed, hooks=[transitions])
    return transitions.episode


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demos")
    env = make_sim_env(cameras=(), seed=0)
    act = scripted_expert(env, noise=0.1, seed=0)
    for seed in range(6):
        save_episode(directory, recorded(env, act, seed))
    return load_episodes(directory)


def small_trainer(demos, steps):
    cfg = PolicyConfig(vector_keys=list(STATE_VECTORS), image_keys=[], hidden_dim=64, embed_dim=32)
    train_cfg = PretrainConfig(steps=steps, batch_size=32, eval_every=10, checkpoint_every=10, val_fraction=0.2)
    return Pretrainer(cfg, train_cfg, demos, LOW, HIGH)


def test_pretraining_reduces_loss_and_writes_a_loadable_policy(demos, tmp_path):
    trainer = small_trainer(demos, 60)
    trainer.run(tmp_path)
    losses = [h["train_loss"] for h in trainer.history]
    assert len(trainer.history) == 6 and losses[-1] < losses[0]
    assert all(np.isfinite(h["val_loss"]) for h in trainer.history)
    policy = load_policy(tmp_path / POLICY_FILE)
    chunk = policy.sample({k: v[:1] for k, v in demos[0].observations.items()}, np.zeros((1, 4, 7), np.float32))
    assert chunk.shape == (1, 4, 7)


def test_resume_continues_exactly_where_training_stopped(demos, tmp_path):
    straight = small_trainer(demos, 20)
    straight.run(tmp_path / "straight")
    first = small_trainer(demos, 10)
    first.run(tmp_path / "resumed")  # "killed" after the checkpoint at step 10
    resumed = small_trainer(demos, 20)
    assert resumed.restore(tmp_path / "resumed") and int(resumed.state["step"]) == 10
    resumed.run(tmp_path / "resumed")
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(straight.state["ema"]), jax.device_get(resumed.state["ema"]))
    assert [h["step"] for h in resumed.history] == [10, 20]


def test_resume_with_another_architecture_is_refused(demos, tmp_path):
    small_trainer(demos, 10).run(tmp_path)
    other = Pretrainer(PolicyConfig(vector_keys=list(STATE_VECTORS), image_keys=[], hidden_dim=48, embed_dim=32), PretrainConfig(steps=20, batch_size=32), demos, LOW, HIGH)
    with pytest.raises(CheckpointError, match="different policy architecture"):
        other.restore(tmp_path)


def test_pretraining_from_camera_frames(tmp_path):
    env = make_sim_env(cameras=("third_person", "wrist"), image_size=24, seed=0)
    act = scripted_expert(env, noise=0.1, seed=0)
    episodes = [recorded(env, act, seed) for seed in range(2)]
    assert episodes[0].observations["wrist_image"].dtype == np.uint8
    cfg = PolicyConfig(image_keys=["third_person_image", "wrist_image"], hidden_dim=32, embed_dim=16, conv_channels=[4, 4])
    trainer = Pretrainer(cfg, PretrainConfig(steps=4, batch_size=8, eval_every=2, checkpoint_every=4, val_fraction=0.5), episodes, LOW, HIGH)
    policy = trainer.run(tmp_path)
    check_fits(policy, env.observation_space, env.action_space)
    obs, _ = env.reset(seed=5)
    chunk = policy.sample({k: v[None] for k, v in obs.items()}, np.zeros((1, 4, 7), np.float32))
    assert chunk.shape == (1, 4, 7) and np.all(chunk >= LOW) and np.all(chunk <= HIGH)


@pytest.mark.parametrize(("stem", "side", "first_kernel", "grid"), [(2, 64, (3, 3, 3, 4), 16), (4, 64, (4, 4, 3, 4), 8), (4, 128, (4, 4, 3, 4), 16)])
def test_the_encoders_first_conv_reads_stem_by_stem_patches(stem, side, first_kernel, grid):
    """conv_stem=4 (the default) downsamples 4x at the first conv; 2 is the 3x3 stride-2 stem of files saved before it."""
    encoder = ConvEncoder((4, 4), 16, stem)
    params = encoder.init(jax.random.PRNGKey(0), np.zeros((1, side, side, 3), np.uint8))["params"]
    assert params["Conv_0"]["kernel"].shape == first_kernel
    assert params["Dense_0"]["kernel"].shape == (grid * grid * 4, 16)  # the last conv's grid, flattened


def test_a_policy_file_from_before_conv_stem_loads_with_the_stride_2_stem(tmp_path):
    policy, obs = random_policy(image_keys=["wrist_image"], conv_stem=2)
    path = save_policy(tmp_path / "old.msgpack", policy)
    payload = read_checkpoint(path)
    del payload["config"]["conv_stem"]
    write_checked_msgpack(path, payload)
    loaded = load_policy(path)
    assert loaded.cfg.conv_stem == 2
    noise = np.zeros((3, *policy.noise_shape), np.float32)
    np.testing.assert_array_equal(loaded.sample(obs, noise), policy.sample(obs, noise))


# ---- fitting noise to recorded chunks (train.seed_noise) ----------------------------------------------------------
def normalised_error(policy, noise_chunks, chunks):
    norm = policy.normalization.normalize_actions
    return np.mean((norm(noise_chunks) - norm(chunks)) ** 2, axis=(1, 2))


@pytest.fixture(scope="module")
def trained_policy(demos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    small_trainer(demos, 1000).run(folder)
    return load_policy(folder / POLICY_FILE)


def test_fitted_noise_reproduces_chunks_the_sampler_made_and_stays_inside_the_box(trained_policy, demos):
    policy, obs = trained_policy, {k: v[:8] for k, v in demos[0].observations.items()}
    known = np.random.default_rng(1).uniform(-1.2, 1.2, (8, *policy.noise_shape)).astype(np.float32)
    chunks = policy.sample(obs, known)
    noise, error = policy.fit_noise(obs, chunks, 1.5)
    _, start_error = policy.fit_noise(obs, chunks, 1.5, steps=0)  # w = 0: the sampler's mean noise
    assert noise.shape == known.shape and noise.dtype == np.float32 and np.all(np.abs(noise) < 1.5)
    # the reported error is the fitted noise's own chunk against the recorded one
    np.testing.assert_allclose(error, normalised_error(policy, policy.sample(obs, noise), chunks), rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(start_error, normalised_error(policy, policy.sample(obs, np.zeros_like(known)), chunks), rtol=1e-3)
    assert np.all(error <= start_error) and error.mean() < start_error.mean() / 10


def test_fitted_noise_never_does_worse_than_the_mean_noise_on_the_demonstrations(trained_policy, demos):
    policy, episode = trained_policy, demos[1]
    chunks = np.stack([episode.actions[t:t + 4] for t in range(len(episode.actions) - 3)])  # the chunk from each step
    obs = {k: v[:len(chunks)] for k, v in episode.observations.items()}
    _, error = policy.fit_noise(obs, chunks, 1.5)
    _, start_error = policy.fit_noise(obs, chunks, 1.5, steps=0)
    assert np.all(error <= start_error) and error.mean() < start_error.mean() / 2


def test_fitting_noise_to_chunks_of_another_shape_says_which_shape_it_needs():
    policy, obs = random_policy()
    with pytest.raises(ValueError, match=r"^Chunks have shape \(3, 2, 7\); the policy's are \(N, 4, 7\)\.$"):
        policy.fit_noise(obs, np.zeros((3, 2, 7), np.float32), 1.5)
