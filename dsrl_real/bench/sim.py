"""`dsrl-real bench sim`: simulator steps per second, state-only and with cameras, and the real-time keeper's jitter."""

from __future__ import annotations

import time

from ..envs.make import make_sim_env


def _steps_per_second(env, steps: int, seed: int = 0) -> float:
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def bench_sim(state_steps: int = 5000, camera_steps: int = 1000, realtime_steps: int = 60) -> dict:
    """Simulator speed, state-only and with two 128x128 cameras, and the real-time keeper's jitter."""
    state_env = make_sim_env(cameras=(), seed=0)
    camera_env = make_sim_env(cameras=("third_person", "wrist"), image_size=128, seed=0)
    realtime_env = make_sim_env(cameras=("third_person", "wrist"), image_size=128, seed=0, real_time=True)
    _steps_per_second(state_env, 200)  # warm-up
    result = {
        "steps_per_s_state": round(_steps_per_second(state_env, state_steps), 1),
        "steps_per_s_cameras": round(_steps_per_second(camera_env, camera_steps), 1),
    }
    realtime_env.reset(seed=0)
    for _ in range(realtime_steps):
        _, _, terminated, truncated, _ = realtime_env.step(realtime_env.action_space.sample())
        if terminated or truncated:
            realtime_env.reset()
    stats = realtime_env.rate.stats
    result.update(
        period_jitter_p99_ms=round(stats.jitter_ms(realtime_env.rate.period_s, 0.99), 3),
        period_jitter_max_ms=round(stats.jitter_ms(realtime_env.rate.period_s, 1.0), 3),
        control_hz=realtime_env.control_hz,
        periods=len(stats.periods_s),
        overruns=stats.overruns,
    )
    return result
