import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dsrl_real  # noqa: F401  (registers the environments)
from dsrl_real.envs.make import make_sim_env
from dsrl_real.rollout import run_episode, scripted_expert


@pytest.mark.parametrize("env_id", ["dsrl_real/WidowXMonkey-v0", "dsrl_real/WidowXDrawer-v0"])
@pytest.mark.parametrize("cameras", [(), ("third_person", "wrist")])
def test_registered_envs_pass_gymnasium_checker(env_id, cameras):
    env = gym.make(env_id, cameras=cameras, image_size=32, seed=3)
    check_env(env.unwrapped, skip_render_check=True)
    keys = set(env.observation_space.spaces)
    assert keys == {"proprio", "object_state"} | {f"{c}_image" for c in cameras}


@pytest.mark.parametrize("render_mode", [None, "rgb_array"])
@pytest.mark.parametrize("cameras", [(), ("third_person", "wrist")])
def test_envs_pass_gymnasium_checker_with_its_render_checks(cameras, render_mode):
    env = gym.make("dsrl_real/WidowXMonkey-v0", cameras=cameras, image_size=32, seed=3, render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports most problems as warnings
        check_env(env.unwrapped)  # with its render checks, which also make the env in the other render mode
    env.reset(seed=0)
    image = env.unwrapped.render()
    if render_mode is None:
        assert image is None
    else:
        assert image.dtype == np.uint8 and image.shape == (32, 32, 3)  # image_size, with cameras or without


def test_a_state_only_env_renders_the_scene_without_adding_an_observation():
    env = make_sim_env(cameras=(), image_size=(24, 40), seed=0, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    before = env.render()
    assert set(obs) == {"proprio", "object_state"} and before.shape == (24, 40, 3) and before.dtype == np.uint8
    env.step(np.array([0.05, 0.05, 0.05, 0, 0, 0, 1], np.float32))
    assert not np.array_equal(before, env.render())  # the frame follows the arm


def test_observations_have_documented_layout():
    env = make_sim_env(cameras=("third_person", "wrist"), image_size=(48, 64), seed=0)
    obs, info = env.reset(seed=1)
    assert obs["third_person_image"].dtype == np.uint8 and obs["third_person_image"].shape == (48, 64, 3)
    assert obs["wrist_image"].shape == (48, 64, 3)
    np.testing.assert_allclose(obs["proprio"][:3], [0.25, 0.0, 0.16], atol=1e-6)  # start pose
    assert obs["proprio"][6] == 1.0  # gripper open
    assert info["stage"] == 0 and info["stage_instruction"] == "pick up the brown monkey"


def test_render_returns_first_camera_frame():
    env = make_sim_env(cameras=("wrist",), image_size=32, seed=0, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs["wrist_image"])


def test_same_seed_same_episode():
    def rollout(seed):
        env = make_sim_env(cameras=("third_person",), image_size=32)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        frames = [obs["third_person_image"]]
        for _ in range(5):
            obs, *_ = env.step(env.action_space.sample())
            frames.append(obs["third_person_image"])
        return np.stack(frames), obs["object_state"]

    a, b, c = rollout(7), rollout(7), rollout(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_success_terminates_and_time_limit_truncates():
    env = make_sim_env(cameras=(), seed=0)
    result = run_episode(env, scripted_expert(env), seed=0)
    assert result.success and result.steps < 70
    obs, reward, terminated, truncated, info = None, None, None, None, None
    env.reset(seed=0)
    for _ in range(70):
        obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert (terminated, truncated, reward, info["step"]) == (False, True, 0.0, 70)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(7))


def test_terminated_step_reports_success_reward():
    env = make_sim_env(task="drawer", cameras=(), seed=0)
    act = scripted_expert(env)
    obs, _ = env.reset(seed=4)
    while True:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        if terminated or truncated:
            break
    assert terminated and not truncated and reward == 1.0 and info["success"] is True


def test_stage_advances_on_monkey_task():
    env = make_sim_env(cameras=(), seed=0)
    act = scripted_expert(env)
    obs, info = env.reset(seed=2)
    stages = [info["stage"]]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        stages.append(info["stage"])
        done = terminated or truncated
    assert stages[0] == 0 and 1 in stages and stages == sorted(stages)
    assert info["stage_success"] == (True, True)


def test_wrong_action_shape_is_a_clear_error():
    env = make_sim_env(cameras=(), seed=0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="a robot action is 7-D"):
        env.step(np.zeros(6))
