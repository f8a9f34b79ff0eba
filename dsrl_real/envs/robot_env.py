"""The gymnasium environment over any `Robot`, `Camera`s and `Scene`.

Observations: `proprio` (x, y, z, roll, pitch, yaw, gripper opening), one `<camera>_image` per
camera (uint8 H x W x 3), and in simulation optionally `object_state`. Actions: the 7-D Bridge
delta. Every action passes the safety filter before the robot sees it. `terminated` means the
task was achieved; `truncated` means the time limit ran out, and the two are never mixed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from ..robots.base import Camera, Robot, Scene
from ..tasks import TaskSpec
from .rate import RateKeeper
from .safety import SafetyFilter, SafetyLimits, action_bounds


class StaleFrameError(RuntimeError):
    """A camera frame was older than env.max_frame_age_s: the arm was stopped and the episode cannot go on."""


def image_key(camera_name: str) -> str:
    return f"{camera_name}_image"


class RobotEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(
        self,
        robot: Robot,
        cameras: Sequence[Camera],
        scene: Scene,
        task: TaskSpec,
        limits: SafetyLimits,
        control_hz: float = 5.0,
        real_time: bool = False,
        terminate_on_success: bool = True,
        object_state: bool = True,
        render_mode: str | None = None,
        max_frame_age_s: float | None = None,
        render_camera: Camera | None = None,
    ):
        """`render_camera`: what `render()` shows when the env has no camera of its own (in simulation,
        a view of the scene that is not an observation)."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        if render_mode == "rgb_array" and not cameras and render_camera is None:
            raise ValueError("render_mode='rgb_array' needs at least one camera to render from.")
        names = [cam.name for cam in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"Camera names must be unique, got {names}.")
        self.robot, self.cameras, self.scene, self.task = robot, list(cameras), scene, task
        self.safety = SafetyFilter(limits)
        self.control_hz = control_hz
        self.period_s = 1.0 / control_hz
        self.rate = RateKeeper(control_hz) if real_time else None
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self._render_camera = None if cameras else render_camera
        self.max_frame_age_s = max_frame_age_s  # None or 0: frames are not checked for age
        self.metadata = {**self.metadata, "render_fps": control_hz}

        proprio_high = np.array([1.0, 1.0, 1.0, np.pi, np.pi, np.pi, 1.0], np.float32)  # metres, radians, opening
        proprio_low = np.array([-1.0, -1.0, -1.0, -np.pi, -np.pi, -np.pi, 0.0], np.float32)
        spaces: dict[str, gym.Space] = {"proprio": gym.spaces.Box(proprio_low, proprio_high, (7,), np.float32)}
        self._object_state = object_state and scene.object_state() is not None
        if self._object_state:
            spaces["object_state"] = gym.spaces.Box(-1.0, 1.0, scene.object_state().shape, np.float32)
        for cam in self.cameras:
            spaces[image_key(cam.name)] = gym.spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        low, high = action_bounds(limits)
        self.action_space = gym.spaces.Box(low=low, high=high)
        self.steps = 0
        self.stage = 0
        self.counters = dict(clipped_step=0, clipped_workspace=0, non_finite=0, refused=0)
        self._needs_reset = True
        self._last_obs: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**31 - 1))
        self.robot.home()
        self.scene.reset(episode_seed)
        self.robot.reset()
        self.steps, self.stage = 0, 0
        self.counters = dict.fromkeys(self.counters, 0)
        self._needs_reset = False
        if self.rate is not None:
            self.rate.start()
        obs = self._observe()
        return obs, self._info(episode_seed=episode_seed)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("The episode has ended (or never started); call reset() before step().")
        report = self.safety(self.robot.state(), action)
        accepted = self.robot.command(report.target, self.period_s)
        self.counters["clipped_step"] += report.clipped_step
        self.counters["clipped_workspace"] += report.clipped_workspace
        self.counters["non_finite"] += report.non_finite
        self.counters["refused"] += not accepted
        if self.rate is not None:
            self.rate.wait()
        self.steps += 1
        obs = self._observe()
        status = self.scene.status()
        success = bool(status.success) if status is not None else False
        terminated = self.terminate_on_success and success
        truncated = not terminated and self.steps >= self.task.max_steps
        self._needs_reset = terminated or truncated
        info = self._info(
            command=np.concatenate([report.target.xyz, report.target.rpy, [float(report.target.gripper_open)]]),
            safety_intervened=report.intervened,
            refused=not accepted,
        )
        return obs, float(success), terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._render_camera is not None:
            return self._render_camera.read().image
        if self._last_obs is not None:
            return self._last_obs[image_key(self.cameras[0].name)]
        return None

    def close(self):
        for cam in self.cameras:
            cam.close()
        if self._render_camera is not None:
            self._render_camera.close()
        self.robot.close()

    def hold(self) -> None:
        """Pause: the arm holds its position until the next step."""
        self.robot.stop()

    def resume(self) -> None:
        """After `hold()`: the control rate restarts now rather than counting the pause as an overrun."""
        if self.rate is not None:
            self.rate.start()

    def emergency_stop(self) -> None:
        """Stop the arm now and end the episode; only `reset()` continues."""
        self.robot.stop()
        self._needs_reset = True

    # ------------------------------------------------------------------------------------------
    def _observe(self) -> dict[str, np.ndarray]:
        obs = {"proprio": self.robot.state().proprio()}
        if self._object_state:
            obs["object_state"] = self.scene.object_state().astype(np.float32)
        for cam in self.cameras:
            frame = cam.read()
            age = time.monotonic() - frame.timestamp_s
            if self.max_frame_age_s and age > self.max_frame_age_s:
                self.robot.stop()
                self._needs_reset = True
                source = getattr(cam, "source", "")
                raise StaleFrameError(
                    f"Camera '{cam.name}'{f' ({source})' if source else ''} delivered a frame {age:.2f} s old, over the "
                    f"{self.max_frame_age_s:g} s limit (env.max_frame_age_s), so the arm was stopped and the episode "
                    "ended; check the camera's cable and driver, then resume the run."
                )
            obs[image_key(cam.name)] = frame.image
        self._last_obs = obs
        return obs

    def _info(self, **extra) -> dict[str, Any]:
        info: dict[str, Any] = {"step": self.steps, "instruction": self.task.instruction, **extra}
        status = self.scene.status()
        if status is not None:
            self.stage = min(status.stage, len(self.task.stages) - 1)
            info.update(progress=status.progress, success=status.success, stage_success=status.stage_success,
                        task_status=status)
        info["stage"] = self.stage
        info["stage_instruction"] = self.task.stages[self.stage]
        info["safety_counts"] = dict(self.counters)
        if self.rate is not None:
            info["overruns"] = self.rate.stats.overruns
        return info
