import numpy as np
import pytest
from conftest import assert_same_batch

from dsrl_real.data import replay_files
from dsrl_real.data.replay import ReplayBuffer

H, A, F = 4, 7, 5
FRAME = (8, 6, 3)


def make_episode(episode: int, T: int, with_noise: bool = True):
    """Every stored value encodes (episode, time) so a sample can be traced back exactly."""
    t = np.arange(T + 1)
    tag = episode * 1000 + t
    obs = {
        "proprio": np.stack([tag, -tag], axis=1).astype(np.float64),  # stored as float32
        "image": (np.ones((T + 1, *FRAME), np.uint8) * ((episode * 31 + t) % 251)[:, None, None, None].astype(np.uint8)),
    }
    features = np.repeat(tag[:, None], F, axis=1).astype(np.float32)
    noise = (np.ones((T, H, A)) * tag[:-1, None, None] + 0.5).astype(np.float32) if with_noise else None
    chunks = (np.ones((T, H, A)) * tag[:-1, None, None] + 0.25).astype(np.float32)
    rewards = tag[:-1].astype(np.float32)
    return dict(observations=obs, features=features, noise=noise, chunks=chunks, rewards=rewards)


def check_consistent(batch):
    """next_* is the observation right after obs in the SAME episode."""
    tag = batch["obs"]["proprio"][..., 0]
    next_tag = batch["next_obs"]["proprio"][..., 0]
    np.testing.assert_array_equal(next_tag, tag + 1)
    np.testing.assert_array_equal(batch["episode_id"], tag // 1000)
    np.testing.assert_array_equal(batch["features"][..., 0], tag)
    np.testing.assert_array_equal(batch["next_features"][..., 0], tag + 1)
    np.testing.assert_array_equal(batch["actions"][..., 0, 0], tag + 0.25)
    np.testing.assert_array_equal(batch["reward"], tag)
    episode, t = tag // 1000, tag % 1000
    np.testing.assert_array_equal(batch["next_obs"]["image"][..., 0, 0, 0], (episode * 31 + t + 1) % 251)


def test_sampling_respects_episode_boundaries_and_uses_the_final_observation():
    buf = ReplayBuffer(capacity=100)
    lengths = [3, 5, 1, 4]
    for i, T in enumerate(lengths):
        ep = make_episode(i, T)
        assert buf.add_episode(**ep, terminated=(i % 2 == 0), truncated=(i % 2 == 1)) == i
    assert len(buf) == sum(lengths)
    assert buf.num_time_indices == sum(T + 1 for T in lengths)
    batch = buf.sample(2000, np.random.default_rng(0))
    check_consistent(batch)
    # Every transition is drawn, and the last one of each episode pairs with the final observation.
    tags = set(batch["obs"]["proprio"][:, 0].astype(int))
    assert tags == {i * 1000 + t for i, T in enumerate(lengths) for t in range(T)}
    for i, T in enumerate(lengths):
        last = batch["obs"]["proprio"][:, 0] == i * 1000 + T - 1
        assert last.any()
        np.testing.assert_array_equal(batch["next_obs"]["proprio"][last, 0], i * 1000 + T)
        # Flags sit on the last transition only.
        assert np.all(batch["terminated"][last] == (i % 2 == 0)) and np.all(batch["truncated"][last] == (i % 2 == 1))
        inner = (batch["episode_id"] == i) & ~last
        assert not batch["terminated"][inner].any() and not batch["truncated"][inner].any()
    assert batch["obs"]["image"].dtype == np.uint8 and batch["obs"]["proprio"].dtype == np.float32


def test_frames_are_stored_once_per_time_index():
    lengths = [6, 9, 4]
    n_time = sum(T + 1 for T in lengths)
    buf = ReplayBuffer(capacity=n_time)
    for i, T in enumerate(lengths):
        buf.add_episode(**make_episode(i, T), terminated=True, truncated=False)
    sizes = buf.storage_bytes()
    frame_bytes = int(np.prod(FRAME))
    assert sizes["obs/image"] == n_time * frame_bytes  # one copy per time index ...
    assert sizes["obs/image"] < 2 * len(buf) * frame_bytes  # ... not obs + next_obs per transition
    assert sorted(k for k in sizes if k.startswith("obs/")) == ["obs/image", "obs/proprio"]
    assert sizes["obs/proprio"] == n_time * 2 * 4  # float32 vectors, also once per time index
    assert buf.sample(3, np.random.default_rng(0))["obs"]["image"].dtype == np.uint8


def test_ring_overwrite_keeps_consistent_transitions():
    buf = ReplayBuffer(capacity=10)
    buf.add_episode(**make_episode(0, 4), terminated=True, truncated=False)  # slots 0-4
    buf.add_episode(**make_episode(1, 3), terminated=False, truncated=True)  # slots 5-8
    buf.add_episode(**make_episode(2, 3), terminated=True, truncated=False)  # slots 9, 0, 1, 2 (wraps)
    # Episode 0 lost its first three observations; its transitions 3 -> 4 survive, 0..2 are gone.
    assert buf.num_time_indices == 10
    assert len(buf) == 1 + 3 + 3
    batch = buf.sample(1000, np.random.default_rng(1))
    check_consistent(batch)
    tags = set(batch["obs"]["proprio"][:, 0].astype(int))
    assert tags == {3, 1000, 1001, 1002, 2000, 2001, 2002}
    # Overwrite everything of episode 0 and episode 1's start.
    buf.add_episode(**make_episode(3, 4), terminated=True, truncated=False)  # slots 3-7
    batch = buf.sample(1000, np.random.default_rng(2))
    check_consistent(batch)
    assert set(batch["obs"]["proprio"][:, 0].astype(int)) == {2000, 2001, 2002, 3000, 3001, 3002, 3003}
    with pytest.raises(ValueError, match="more than the buffer's capacity"):
        buf.add_episode(**make_episode(4, 10), terminated=True, truncated=False)


def test_n_step_sums_rewards_within_the_episode_and_bootstraps_from_its_last_observation():
    buf = ReplayBuffer(capacity=12)
    buf.add_episode(**make_episode(0, 4), terminated=True, truncated=False)  # slots 0-4
    buf.add_episode(**make_episode(1, 3), terminated=False, truncated=True)  # slots 5-8
    buf.add_episode(**make_episode(2, 2), terminated=True, truncated=False)  # slots 9, 10, 11
    gamma = 0.5
    batch = buf.sample(2000, np.random.default_rng(0), n_step=3, gamma=gamma)
    tag = batch["obs"]["proprio"][:, 0].astype(int)
    episode, t = tag // 1000, tag % 1000
    length = np.array([4, 3, 2])[episode]
    k = np.minimum(3, length - t)  # transitions summed: three, or up to the episode's end
    np.testing.assert_array_equal(batch["bootstrap_steps"], k)
    # The rewards are the tags (episode * 1000 + t): sum over j < k of gamma^j (tag + j).
    expected = [sum(gamma**j * (g + j) for j in range(n)) for g, n in zip(tag, k)]
    np.testing.assert_allclose(batch["reward"], expected, rtol=1e-6)
    np.testing.assert_array_equal(batch["next_obs"]["proprio"][:, 0], tag + k)
    np.testing.assert_array_equal(batch["next_features"][:, 0], tag + k)
    # The flags are the last summed transition's: only sums that reach the episode's end carry them.
    ends = t + k == length
    np.testing.assert_array_equal(batch["terminated"], ends & (episode != 1))
    np.testing.assert_array_equal(batch["truncated"], ends & (episode == 1))
    # The rest of the transition is still the first one's.
    np.testing.assert_array_equal(batch["actions"][:, 0, 0], tag + 0.25)
    np.testing.assert_array_equal(batch["noise"][:, 0, 0], tag + 0.5)
    assert set(k) == {1, 2, 3}
    # One step is the plain transition.
    one = buf.sample(500, np.random.default_rng(0))
    check_consistent(one)
    np.testing.assert_array_equal(one["bootstrap_steps"], 1)
    with pytest.raises(ValueError, match="n_step must be at least 1"):
        buf.sample(4, np.random.default_rng(0), n_step=0)


def test_n_step_stays_inside_a_partly_overwritten_episode():
    buf = ReplayBuffer(capacity=10)
    buf.add_episode(**make_episode(0, 6), terminated=False, truncated=True)  # slots 0-6
    buf.add_episode(**make_episode(1, 4), terminated=True, truncated=False)  # slots 7, 8, 9, 0, 1: episode 0 keeps 2-6
    batch = buf.sample(1000, np.random.default_rng(3), n_step=4, gamma=1.0)
    tag = batch["obs"]["proprio"][:, 0].astype(int)
    episode, t = tag // 1000, tag % 1000
    assert set(tag) == {2, 3, 4, 5, 1000, 1001, 1002, 1003}
    k = np.minimum(4, np.array([6, 4])[episode] - t)
    np.testing.assert_array_equal(batch["next_obs"]["proprio"][:, 0], tag + k)
    np.testing.assert_array_equal(batch["episode_id"], episode)


def test_episodes_without_noise():
    buf = ReplayBuffer(capacity=50)
    buf.add_episode(**make_episode(0, 3, with_noise=False), terminated=True, truncated=False)
    buf.add_episode(**make_episode(1, 3, with_noise=True), terminated=True, truncated=False)
    batch = buf.sample(500, np.random.default_rng(0))
    demo = batch["episode_id"] == 0
    assert demo.any() and (~demo).any()
    assert not batch["has_noise"][demo].any() and np.isnan(batch["noise"][demo]).all()
    assert batch["has_noise"][~demo].all()
    np.testing.assert_array_equal(batch["noise"][~demo][:, 0, 0], batch["obs"]["proprio"][~demo, 0] + 0.5)
    np.testing.assert_array_equal(batch["actions"][demo][:, 0, 0], batch["obs"]["proprio"][demo, 0] + 0.25)


def test_stacked_batches_and_no_obs():
    buf = ReplayBuffer(capacity=50)
    buf.add_episode(**make_episode(0, 6), terminated=False, truncated=True)
    batch = buf.sample(8, np.random.default_rng(0), num_batches=3)
    assert batch["features"].shape == (3, 8, F) and batch["noise"].shape == (3, 8, H, A)
    assert batch["obs"]["image"].shape == (3, 8, *FRAME)
    check_consistent(batch)
    slim = buf.sample(8, np.random.default_rng(0), include_obs=False)
    assert "obs" not in slim and "next_obs" not in slim


def test_save_load_round_trip_reproduces_the_next_batch(tmp_path):
    buf = ReplayBuffer(capacity=12)
    for i, T in enumerate([4, 3, 5]):  # wraps once
        buf.add_episode(**make_episode(i, T, with_noise=i != 1), terminated=i == 0, truncated=i != 0)
    path = replay_files.save(buf, tmp_path / "replay")
    assert [p.name for p in tmp_path.iterdir()] == ["replay"]
    rng = np.random.default_rng(7)
    restored = replay_files.load(path)
    rng_state = rng.bit_generator.state
    expected = buf.sample(64, rng)
    rng.bit_generator.state = rng_state
    got = restored.sample(64, rng)
    assert_same_batch(got, expected)
    assert len(restored) == len(buf) and restored.num_episodes_started == 3
    # Inserting after a reload continues the ring where it was.
    for b in (buf, restored):
        b.add_episode(**make_episode(3, 2), terminated=True, truncated=False)
    np.testing.assert_array_equal(buf.sample(32, np.random.default_rng(3))["index"], restored.sample(32, np.random.default_rng(3))["index"])
    # A partly filled buffer round-trips too (only the filled slots are written).
    small = ReplayBuffer(capacity=1000)
    small.add_episode(**make_episode(0, 2), terminated=True, truncated=False)
    again = replay_files.load(replay_files.save(small, tmp_path / "small"))
    assert again.capacity == 1000 and again.storage_bytes() == small.storage_bytes()


def test_shape_mismatch_and_empty_buffer_errors():
    buf = ReplayBuffer(capacity=20)
    with pytest.raises(ValueError, match="no transitions yet"):
        buf.sample(4, np.random.default_rng(0))
    buf.add_episode(**make_episode(0, 3), terminated=True, truncated=False)
    bad = make_episode(1, 3)
    bad["features"] = np.zeros((4, F + 1), np.float32)
    with pytest.raises(ValueError, match="features has per-step shape"):
        buf.add_episode(**bad, terminated=True, truncated=False)
    bad = make_episode(1, 3)
    bad["chunks"] = bad["chunks"][:2]
    with pytest.raises(ValueError, match="chunks has 2 entries"):
        buf.add_episode(**bad, terminated=True, truncated=False)
