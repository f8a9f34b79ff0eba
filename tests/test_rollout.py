"""The one episode loop (rollout/): hooks see every step in order, may end the episode, and see it
even when another hook raises; chunk playback keeps each chunk step."""

import dataclasses

import numpy as np
import pytest

from dsrl_real.envs.make import make_sim_env
from dsrl_real.rewards.scoring import EpisodeEnd
from dsrl_real.rollout import ChunkPlayback, EpisodeHook, run_episode


class Log(EpisodeHook):
    def __init__(self, name, calls, end_at=None, raise_at=None):
        self.name, self.calls, self.end_at, self.raise_at = name, calls, end_at, raise_at

    def begin(self, env, obs, info):
        self.calls.append((self.name, "begin"))

    def step(self, step):
        self.calls.append((self.name, step.steps))
        if step.steps == self.raise_at:
            raise KeyboardInterrupt
        if step.steps == self.end_at:
            return EpisodeEnd("human_success", terminated=True, truncated=False, success=True)
        return None

    def end(self, result):
        self.calls.append((self.name, "end", None if result is None else result.steps))


class Constant:
    """A chunked 'policy' that holds still: three zero actions per chunk."""

    chunk_size, action_dim = 3, 7

    def sample(self, obs, noise):
        return np.repeat(noise[:, :1, :], 3, axis=1) * 0


def test_hooks_see_each_step_in_order_and_a_hook_ends_the_episode():
    env = make_sim_env(cameras=(), seed=0)
    calls = []
    result = run_episode(env, lambda obs: np.zeros(7, np.float32), seed=0,
                         hooks=[Log("a", calls, end_at=3), Log("b", calls, end_at=2)])
    assert calls == [("a", "begin"), ("b", "begin"), ("a", 1), ("b", 1), ("a", 2), ("b", 2),
                     ("a", "end", 2), ("b", "end", 2)]
    assert (result.steps, result.terminated, result.truncated, result.end_reason) == (2, True, False, "human_success")
    assert len(result.rewards) == 2 and result.seed == 0


def test_every_hook_sees_the_step_another_hook_raised_on_then_the_exception_propagates():
    env = make_sim_env(cameras=(), seed=0)
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run_episode(env, lambda obs: np.zeros(7, np.float32), seed=0, hooks=[Log("a", calls, raise_at=2), Log("b", calls)])
    assert calls[-4:] == [("a", 2), ("b", 2), ("a", "end", None), ("b", "end", None)]


def test_chunk_playback_keeps_each_chunk_step_and_its_first_rows_act_info():
    env = make_sim_env(cameras=(), seed=0)
    env.task = dataclasses.replace(env.task, max_steps=7)
    draws = iter(range(1, 10))
    playback = ChunkPlayback(Constant(), lambda obs: np.full((3, 7), next(draws), np.float32))
    infos = []

    class Seen(EpisodeHook):
        def step(self, step):
            infos.append(sorted(step.act_info))

    result = run_episode(env, playback, seed=0, hooks=[Seen()])
    assert result.steps == 7 and playback.starts == [0, 3, 6]
    assert [w[0, 0] for w in playback.noise] == [1, 2, 3]  # one draw per chunk, none after the episode ends
    assert infos == [["act_time_s", "chunk", "noise"], [], []] * 2 + [["act_time_s", "chunk", "noise"]]
    assert playback.step_frames(result.steps) == [0, 3, 6, 7]
    rewards = playback.chunk_rewards([0.5, 0.25, 0.25, 1.0, 0.0, 0.0, 2.0])
    assert rewards == [1.0, 1.0, 2.0]
