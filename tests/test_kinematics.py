import numpy as np

from dsrl_real.geometry import matrix_to_rpy, pose_to_matrix, rpy_to_matrix
from dsrl_real.sim import kinematics as k


def test_home_pose_matches_interbotix_description():
    np.testing.assert_allclose(k.forward(np.zeros(6)), [[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1]], atol=1e-12)


def test_inverse_recovers_forward_for_elbow_up_configurations():
    rng = np.random.default_rng(0)
    for _ in range(300):
        q = rng.uniform(k.JOINT_LIMITS[:, 0], k.JOINT_LIMITS[:, 1])
        target = k.forward(q)
        solution, ok = k.inverse(target, q)
        if ok:
            np.testing.assert_allclose(k.forward(solution), target, atol=1e-9)
            assert k.within_limits(solution)


def test_unreachable_target_is_refused_and_returns_guess():
    guess = np.full(6, 0.1)
    solution, ok = k.inverse(pose_to_matrix([1.0, 0.0, 0.2], [0, 0, 0]), guess)
    assert not ok
    np.testing.assert_array_equal(solution, guess)


def test_rpy_round_trip():
    for rpy in ([0.1, 0.2, 0.3], [-0.5, 1.2, 2.0], [0.0, -1.0, -3.0]):
        np.testing.assert_allclose(matrix_to_rpy(rpy_to_matrix(*rpy)), rpy, atol=1e-12)
