"""The robot never receives a command outside the workspace box or beyond the per-step limit."""

import numpy as np
import pytest
from conftest import STATE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsrl_real.envs.make import make_sim_env
from dsrl_real.envs.safety import SafetyFilter, SafetyLimits, UnsafeStateError
from dsrl_real.geometry import wrap_angle
from dsrl_real.robots.base import RobotState

LIMITS = SafetyLimits((0.15, -0.2, 0.02), (0.42, 0.2, 0.25), 0.05, 0.25, (-0.5, 0.7, -0.8), (0.5, 1.5, 0.8))
EPS = 1e-9


def assert_safe(before: RobotState, command: np.ndarray, limits=LIMITS):
    xyz, rpy = command[:3], command[3:6]
    assert np.all(xyz >= np.asarray(limits.workspace_low) - EPS) and np.all(xyz <= np.asarray(limits.workspace_high) + EPS)
    assert np.all(np.abs(xyz - before.xyz) <= limits.max_step_xyz + EPS)
    assert np.all(np.abs(wrap_angle(rpy - before.rpy)) <= limits.max_step_rpy + EPS)
    assert command[6] in (0.0, 1.0)


huge = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
adversarial = st.one_of(
    huge, st.sampled_from([np.nan, np.inf, -np.inf, 0.05, -0.05, 0.25, -0.25, 1e308, -1e308]), st.floats(-0.1, 0.1)
)
actions = st.lists(st.lists(adversarial, min_size=7, max_size=7), min_size=50, max_size=200)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions, seed=st.integers(0, 1000))
def test_env_commands_stay_inside_box_and_step_limit(actions, seed):
    env = make_sim_env(cameras=(), seed=seed)
    env.reset(seed=seed)
    for action in actions:
        before = env.robot.state()
        _, _, terminated, truncated, info = env.step(np.array(action))
        assert_safe(before, info["command"])
        if terminated or truncated:
            env.reset()


def test_thousands_of_steps_pushing_against_every_face():
    env = make_sim_env(cameras=(), seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    directions = np.vstack([np.eye(7)[:6], -np.eye(7)[:6]])
    for step in range(3000):
        action = directions[(step // 40) % len(directions)] * rng.uniform(0.01, 10.0)
        action[6] = rng.integers(0, 2)
        before = env.robot.state()
        _, _, terminated, truncated, info = env.step(action)
        assert_safe(before, info["command"])
        if terminated or truncated:
            env.reset()


@given(
    xyz=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
    rpy=st.lists(st.floats(-3.1, 3.1), min_size=3, max_size=3),
    action=st.lists(huge, min_size=7, max_size=7),
)
def test_filter_from_outside_the_box_moves_back_within_step_limit(xyz, rpy, action):
    before = RobotState(np.array(xyz), np.array(rpy), 1.0)
    report = SafetyFilter(LIMITS)(before, np.array(action))
    target = report.target
    assert np.all(np.abs(target.xyz - before.xyz) <= LIMITS.max_step_xyz + EPS)
    assert np.all(np.abs(wrap_angle(target.rpy - before.rpy)) <= LIMITS.max_step_rpy + EPS)
    low, high = np.asarray(LIMITS.workspace_low), np.asarray(LIMITS.workspace_high)
    # Never further from the box than where it started.
    outside_before = np.maximum(low - before.xyz, 0) + np.maximum(before.xyz - high, 0)
    outside_after = np.maximum(low - target.xyz, 0) + np.maximum(target.xyz - high, 0)
    assert np.all(outside_after <= outside_before + EPS)


def test_filter_reports_what_it_changed():
    state = RobotState(np.array([0.4, 0.0, 0.1]), np.array([0.0, 1.0, 0.0]), 1.0)
    f = SafetyFilter(LIMITS)
    inside = f(state, np.array([0.01, 0, 0, 0, 0, 0, 1]))
    assert not inside.intervened
    np.testing.assert_allclose(inside.target.xyz, [0.41, 0.0, 0.1])
    big = f(state, np.array([0.2, 0, 0, 0, 0, 0, 0]))
    assert big.clipped_step and big.clipped_workspace and not big.target.gripper_open
    np.testing.assert_allclose(big.target.xyz, [0.42, 0.0, 0.1])
    nan = f(state, np.array([np.nan, 0, 0, 0, 0, 0, 0]))
    assert nan.non_finite and nan.target.gripper_open  # hold still, keep the gripper as it is
    np.testing.assert_allclose(nan.target.xyz, state.xyz)


def test_empty_workspace_box_is_rejected():
    with pytest.raises(ValueError, match="Workspace box is empty"):
        SafetyLimits((0.3, 0, 0), (0.2, 1, 1))


# ---- limits that are not finite, poses that are not finite: nothing is ever sent -----------------------------------
BOUNDS = ("workspace_low", "workspace_high", "rpy_low", "rpy_high")


def _limits(**changes):
    values = {"workspace_low": LIMITS.workspace_low, "workspace_high": LIMITS.workspace_high, "max_step_xyz": LIMITS.max_step_xyz,
              "max_step_rpy": LIMITS.max_step_rpy, "rpy_low": LIMITS.rpy_low, "rpy_high": LIMITS.rpy_high}
    return SafetyLimits(**{**values, **changes})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("name", BOUNDS)
def test_a_non_finite_bound_is_refused(name, axis, bad):
    bound = list(getattr(LIMITS, name))
    bound[axis] = bad
    with pytest.raises(ValueError, match=f"^Safety limit {name} = .* must be 3 finite numbers.$"):
        _limits(**{name: tuple(bound)})


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -0.01])
@pytest.mark.parametrize("name", ["max_step_xyz", "max_step_rpy"])
def test_a_step_limit_that_is_not_finite_and_positive_is_refused(name, bad):
    with pytest.raises(ValueError, match="^Per-step limits max_step_xyz = .* must be finite and positive.$"):
        _limits(**{name: bad})


def test_empty_orientation_box_and_wrong_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"^Orientation box is empty: rpy_low \[-0.5, 1.5, -0.8\] must be below"):
        _limits(rpy_low=(-0.5, 1.5, -0.8))
    with pytest.raises(ValueError, match=r"^Safety limit workspace_high = \[0.4, 0.2\] must be 3 finite numbers.$"):
        _limits(workspace_high=(0.4, 0.2))


def test_nan_in_the_configured_workspace_is_refused_before_the_arm_moves():
    from dsrl_real.config import ConfigError, load_config
    from dsrl_real.envs.make import build_env, safety_limits

    with pytest.raises(ConfigError, match=r"^safety.workspace_low\[1\] = nan is not a finite number; it must be in \[-2, 2\].$"):
        load_config(overrides=["safety.workspace_low=[0.15,.nan,0.02]", *STATE])
    cfg = load_config(overrides=[*STATE])
    cfg.safety.workspace_high[2] = float("nan")  # past load_config: the factory and the filter refuse it too
    with pytest.raises(ConfigError, match=r"^Safety limit workspace_high = \[0.42, 0.2, nan\] must be 3 finite numbers.$"):
        safety_limits(cfg)
    with pytest.raises(ConfigError, match="must be 3 finite numbers"):
        build_env(cfg)


@pytest.mark.parametrize("part", ["xyz", "rpy", "gripper"])
def test_a_non_finite_measured_pose_sends_nothing(part):
    env = make_sim_env(cameras=(), seed=0)
    env.reset(seed=0)
    sent = []
    env.robot.command = lambda target, duration_s: sent.append(target) or True
    state = env.robot.state()
    xyz, rpy, gripper = state.xyz.copy(), state.rpy.copy(), state.gripper
    if part == "xyz":
        xyz[1] = np.nan
    elif part == "rpy":
        rpy[0] = np.inf
    else:
        gripper = np.nan
    env.robot.state = lambda: RobotState(xyz, rpy, gripper)
    for action in (np.zeros(7), np.full(7, np.nan)):
        with pytest.raises(UnsafeStateError, match=r"^The robot reported the pose .* which is not finite, so no command was sent"):
            env.step(action)
    assert sent == []


finite_box = st.tuples(st.floats(-1.9, 1.8), st.floats(0.01, 0.1)).map(lambda lw: (lw[0], lw[0] + lw[1]))


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(finite_box, min_size=3, max_size=3), step=st.floats(1e-4, 0.2),
       xyz=st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3), rpy=st.lists(st.floats(-3.1, 3.1), min_size=3, max_size=3),
       action=st.lists(adversarial, min_size=7, max_size=7))
def test_any_finite_limits_give_a_finite_target_within_the_step_limit(boxes, step, xyz, rpy, action):
    limits = SafetyLimits(tuple(b[0] for b in boxes), tuple(b[1] for b in boxes), step, 0.25)
    before = RobotState(np.array(xyz), np.array(rpy), 0.5)
    target = SafetyFilter(limits)(before, np.array(action)).target
    assert np.all(np.isfinite(target.xyz)) and np.all(np.isfinite(target.rpy))
    assert np.all(np.abs(target.xyz - before.xyz) <= step + EPS)
    assert np.all(np.abs(wrap_angle(target.rpy - before.rpy)) <= 0.25 + EPS)
