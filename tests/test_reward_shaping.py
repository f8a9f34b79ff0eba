"""Reward shaping: sparse, dense (progress deltas) and step-penalty forms on exact inputs."""

import numpy as np
import pytest

from dsrl_real.config import ConfigError
from dsrl_real.rewards.base import EPISODE_SCORE, PROGRESS, SUCCESS, EpisodeScore
from dsrl_real.rewards.shaping import (
    check_form,
    per_frame,
    progress_deltas,
    shape_rewards,
    sparse_rewards,
    staged_progress,
    step_penalty_rewards,
)


def test_sparse_puts_the_episode_reward_on_the_last_chunk_step():
    np.testing.assert_array_equal(sparse_rewards(3, 0.75), [0.0, 0.0, 0.75])
    np.testing.assert_array_equal(shape_rewards("sparse", EpisodeScore(reward=0.5, success=False), 2), [0.0, 0.5])


def test_step_penalty_is_minus_one_per_step_and_zero_on_a_successful_last_step():
    np.testing.assert_array_equal(step_penalty_rewards(3, success=True), [-1.0, -1.0, 0.0])
    np.testing.assert_array_equal(step_penalty_rewards(3, success=False), [-1.0, -1.0, -1.0])
    np.testing.assert_array_equal(shape_rewards("step_penalty", EpisodeScore(reward=1.0, success=True), 1), [0.0])


def test_dense_reward_is_progress_at_the_chunks_last_frame_minus_at_its_first():
    progress = np.array([0.0, 0.1, 0.3, 0.3, 0.6, 1.0], np.float32)
    rewards = progress_deltas(progress, [0, 2, 4, 5])  # chunks cover frames 0-2, 2-4, 4-5
    np.testing.assert_allclose(rewards, [0.3, 0.3, 0.4], atol=1e-6)
    assert rewards.sum() == pytest.approx(progress[5] - progress[0])
    shaped = shape_rewards("dense", EpisodeScore(reward=1.0, success=True), 3, progress, [0, 2, 4, 5])
    np.testing.assert_allclose(shaped, rewards)
    np.testing.assert_allclose(progress_deltas(progress, [0, 5]), [1.0])  # a chunk that lost progress would be negative
    np.testing.assert_allclose(progress_deltas(progress[::-1].copy(), [0, 5]), [-1.0])


def test_dense_rejects_frames_that_do_not_fit_the_progress_curve():
    with pytest.raises(ValueError, match="do not fit"):
        progress_deltas(np.zeros(4), [0, 2, 4])
    with pytest.raises(ValueError, match="progress deltas for 3 chunk steps"):
        shape_rewards("dense", EpisodeScore(reward=0.0, success=False), 3, np.zeros(5), [0, 2, 4])


def test_subsampled_progress_is_interpolated_onto_every_frame():
    np.testing.assert_allclose(per_frame(np.array([0.0, 1.0]), 5), [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(per_frame(np.array([0.2, 0.4, 0.6]), 3), [0.2, 0.4, 0.6])
    np.testing.assert_allclose(per_frame(np.array([0.7]), 3), [0.7, 0.7, 0.7])
    # A backend that says which frames it scored (Robometer's subsampling indices).
    np.testing.assert_allclose(per_frame(np.array([0.0, 0.2, 1.0]), 5, positions=[0, 1, 4]), [0.0, 0.2, 0.2 + 0.8 / 3, 0.2 + 1.6 / 3, 1.0])
    with pytest.raises(ValueError, match="2 progress values for 3 frame positions"):
        per_frame(np.array([0.0, 1.0]), 5, positions=[0, 2, 4])


def test_staged_progress_counts_finished_stages_and_the_shared_frame_goes_to_the_later_stage():
    segments = [(0, 0, 3, np.array([0.0, 0.5, 1.0, 1.0])), (1, 3, 5, np.array([0.0, 0.5, 1.0]))]
    np.testing.assert_allclose(staged_progress(segments, 2, 6), [0.0, 0.25, 0.5, 0.5, 0.75, 1.0])
    # The episode ended in stage 0: frames after its last scored one keep its value.
    np.testing.assert_allclose(staged_progress([(0, 0, 2, np.array([0.0, 0.2, 0.4]))], 2, 4), [0.0, 0.1, 0.2, 0.2])


def test_forms_are_checked_against_what_the_backend_offers():
    check_form("dense", frozenset({PROGRESS, SUCCESS}), "robometer")
    check_form("sparse", frozenset({EPISODE_SCORE}), "roboreward")
    with pytest.raises(ConfigError, match="reward.form=dense needs per-frame progress, which the 'roboreward' backend"):
        check_form("dense", frozenset({EPISODE_SCORE}), "roboreward")
    with pytest.raises(ConfigError, match="Unknown reward.form 'shaped'; choose one of: sparse, dense, step_penalty"):
        check_form("shaped", frozenset({EPISODE_SCORE}), "roboreward")
