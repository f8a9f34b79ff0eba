"""Builds the environment a config describes. The only place that knows concrete robot classes; the hardware
adapters import their SDKs (Interbotix, rclpy, pyrealsense2) only when they connect, so the simulator needs none."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym

from ..config import CameraConfig, Config, ConfigError, load_config
from ..robots.franka import FrankaRobot
from ..robots.manual import ManualScene
from ..robots.realsense import RealSenseCamera
from ..robots.ros_camera import RosTopicCamera
from ..robots.sim import SimCamera, SimRobot, SimScene
from ..robots.widowx import WidowXRobot
from ..sim.tabletop import Tabletop
from ..tasks import SIM_TASKS, task_spec
from .robot_env import RobotEnv
from .safety import SafetyLimits

ROBOT_KINDS = ("sim", "widowx", "franka")
CAMERA_KINDS = ("sim", "realsense", "ros_topic")


def safety_limits(cfg: Config) -> SafetyLimits:
    s = cfg.safety
    for key in ("workspace_low", "workspace_high", "rpy_low", "rpy_high"):
        if len(getattr(s, key)) != 3:
            raise ConfigError(f"safety.{key} needs 3 numbers, got {list(getattr(s, key))}.")
    try:
        return SafetyLimits(
            tuple(s.workspace_low), tuple(s.workspace_high), s.max_step_xyz, s.max_step_rpy,
            tuple(s.rpy_low), tuple(s.rpy_high),
        )
    except ValueError as err:
        raise ConfigError(str(err)) from err


def build_env(cfg: Config, render_mode: str | None = None, prompt: Callable[[str], str] | None = None,
              render_size: tuple[int, int] | None = None) -> RobotEnv:
    """The env of `cfg`. A simulated env without cameras renders (render_mode="rgb_array") a third-person
    view of `render_size` (height, width; default a camera's default size) that is no observation."""
    task = task_spec(cfg)
    limits = safety_limits(cfg)
    kind = cfg.robot.kind
    render_camera = None
    if kind == "sim":
        if task.name not in SIM_TASKS:
            raise ConfigError(f"robot.kind=sim runs only the simulated tasks {list(SIM_TASKS)}, not '{task.name}'.")
        sim = Tabletop(task.name, seed=cfg.run.seed)
        robot = SimRobot(sim, cfg.robot.start_xyz, cfg.robot.start_rpy)
        scene = SimScene(sim)
        cameras = [_sim_camera(sim, c) for c in cfg.cameras]
        if render_mode == "rgb_array" and not cameras:
            default = CameraConfig(name="render")
            height, width = render_size or (default.height, default.width)
            render_camera = SimCamera(sim, "render", "third_person", width, height)
    elif kind in ("widowx", "franka"):
        if kind == "widowx":
            robot = WidowXRobot.connect(cfg.robot)
        else:
            robot = FrankaRobot.connect(cfg.robot)
        scene = ManualScene(task, prompt) if prompt is not None else ManualScene(task)
        cameras = []
        try:
            for c in cfg.cameras:
                cameras.append(_hardware_camera(c))
        except BaseException:  # a camera that fails must not leave the arm connected and the others open
            for cam in cameras:
                cam.close()
            robot.close()
            raise
    else:
        raise ConfigError(f"Unknown robot.kind '{kind}'; choose one of {list(ROBOT_KINDS)}.")
    return RobotEnv(
        robot, cameras, scene, task, limits,
        control_hz=cfg.robot.control_hz,
        real_time=cfg.env.real_time or kind != "sim",
        terminate_on_success=cfg.task.terminate_on_success,
        object_state=cfg.env.object_state,
        render_mode=render_mode,
        max_frame_age_s=None if kind == "sim" else cfg.env.max_frame_age_s,
        render_camera=render_camera,
    )


def _sim_camera(sim, c: CameraConfig):
    if c.kind != "sim":
        raise ConfigError(f"Camera '{c.name}' is kind '{c.kind}', but the simulated robot has only kind 'sim' cameras.")
    return SimCamera(sim, c.name, c.view, c.width, c.height)


def _hardware_camera(c: CameraConfig):
    if c.kind == "realsense":
        return RealSenseCamera(c.name, serial=c.serial, width=c.width, height=c.height, fps=c.fps, timeout_s=c.timeout_s)
    if c.kind == "ros_topic":
        if not c.topic:
            raise ConfigError(f"Camera '{c.name}' has kind 'ros_topic' but no topic; set its topic to a sensor_msgs/Image "
                              "topic such as /camera/camera/color/image_raw.")
        return RosTopicCamera(c.name, c.topic, width=c.width, height=c.height, timeout_s=c.timeout_s)
    raise ConfigError(f"Camera '{c.name}' has kind '{c.kind}'; on hardware choose one of ['realsense', 'ros_topic'].")


def make_sim_env(
    task: str = "monkey",
    cameras: tuple[str, ...] | list[str] = ("third_person", "wrist"),
    image_size: int | tuple[int, int] = 128,
    seed: int | None = None,
    object_state: bool = True,
    real_time: bool = False,
    render_mode: str | None = None,
    max_steps: int = 70,
) -> RobotEnv:
    """Entry point of the registered `dsrl_real/WidowX*-v0` environments."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    cfg = load_config()
    cfg.task.name, cfg.task.max_steps = task, max_steps
    cfg.env.object_state, cfg.env.real_time = object_state, real_time
    cfg.run.seed = 0 if seed is None else seed
    cfg.cameras = [CameraConfig(name=view, view=view, width=width, height=height) for view in cameras]
    env = build_env(cfg, render_mode=render_mode, render_size=(height, width))
    if seed is not None:
        env.np_random, _ = gym.utils.seeding.np_random(seed)
    return env
