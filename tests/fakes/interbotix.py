"""A fake of the Interbotix ROS 2 Python API (G3, humble 2024) driving a simulated `Tabletop`.

    with install(sim) as fake:                    # registers the real module names in sys.modules
        from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS
        bot = InterbotixManipulatorXS(robot_model="wx250s", group_name="arm", gripper_name="gripper")
        ...
        fake.calls                                # every public call: Call(name, args, kwargs)

Same constructor arguments, method names, signatures, return values and quirks as the real API:

* every public call is validated against `interbotix_api` (an unknown method or argument raises
  `InterbotixAPIMismatch`) and recorded in `fake.calls`;
* the constructor blocks while the driver (xs_sdk) is not running, like the real one, until
  `fake.start_driver()` or the end of the `install` block (then it raises, so no thread hangs);
* a second `InterbotixManipulatorXS` without `node=` raises `InterbotixException`, as does a second
  `robot_startup()`;
* IK failure returns `(theta_list, False)` and does not move; joint commands are checked against
  the URDF position limits and against the velocity limit using the *stored* moving_time;
  `moving_time`/`accel_time` passed to a motion call are sticky;
* measured joint states only update while the node spins, i.e. between `robot_startup()` and
  `robot_shutdown()`; publishing after `robot_shutdown()` raises;
* with `install(sim, ros=...)` (an installed `rclpy_fake`), the global node is an rclpy node, created as
  upstream creates it (common_robot/robot.py create_interbotix_global_node: `rclpy.init()` unless rclpy
  is up, then `InterbotixRobotNode(node_name='interbotix_robot_manipulation')` with the process's global
  ROS arguments, so a global `__node:=` remap renames it too), and `robot_shutdown()` destroys it and
  shuts rclpy down. Without `ros`, a plain stand-in node.

Motions are instantaneous: `blocking=True` and gripper delays never sleep, they only advance
`fake.clock_s`, so tests stay fast.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from dsrl_real.geometry import matrix_to_rpy, rpy_to_matrix
from dsrl_real.sim import kinematics
from dsrl_real.sim.tabletop import GRIPPER_FULL_OPENING, Tabletop
from fakes import interbotix_api as api
from fakes.api_check import Checked
from fakes.modules import swapped

log = logging.getLogger("dsrl_real.fake_interbotix")

ARM_JOINTS = list(kinematics.JOINT_NAMES)
JOINT_STATE_NAMES = ARM_JOINTS + ["gripper", "left_finger", "right_finger"]
_EPS = 1e-5
# URDF limits as the xs_sdk RobotInfo service reports them (float32), wx250s.urdf.xacro.
ARM_LOWER = [-math.pi + _EPS, math.radians(-108), math.radians(-123), -math.pi + _EPS, math.radians(-100), -math.pi + _EPS]
ARM_UPPER = [math.pi - _EPS, math.radians(114), math.radians(92), math.pi - _EPS, math.radians(123), math.pi - _EPS]
ARM_VELOCITY = [math.pi] * 6
SLEEP_POSITIONS = [0.0, -1.80, 1.55, 0.0, 0.8, 0.0]  # interbotix_xsarm_control/config/wx250s.yaml
FINGER_LOWER, FINGER_UPPER = 0.015, 0.037  # left_finger prismatic limits (m)
REV = 2 * np.pi

MODULE_NAMES = (
    "interbotix_xs_modules",
    "interbotix_xs_modules.xs_robot",
    "interbotix_xs_modules.xs_robot.arm",
    "interbotix_xs_modules.xs_robot.gripper",
    "interbotix_xs_modules.xs_robot.core",
    "interbotix_common_modules",
    "interbotix_common_modules.common_robot",
    "interbotix_common_modules.common_robot.robot",
    "interbotix_common_modules.common_robot.exceptions",
)


def _f32(values) -> list[float]:
    return [float(np.float32(v)) for v in values]


@dataclass(frozen=True)
class Call:
    name: str  # e.g. 'arm.set_joint_positions', 'gripper.grasp', 'bot.__init__', 'robot_startup'
    args: tuple
    kwargs: dict


@dataclass
class JointState:
    """Shape of `sensor_msgs.msg.JointState` (header omitted)."""

    name: List[str] = field(default_factory=list)
    position: List[float] = field(default_factory=list)
    velocity: List[float] = field(default_factory=list)
    effort: List[float] = field(default_factory=list)


@dataclass
class RobotInfoResponse:
    """Fields of `interbotix_xs_msgs/srv/RobotInfo` response."""

    mode: str = "position"
    profile_type: str = "time"
    joint_names: List[str] = field(default_factory=list)
    joint_ids: List[int] = field(default_factory=list)
    joint_lower_limits: List[float] = field(default_factory=list)
    joint_upper_limits: List[float] = field(default_factory=list)
    joint_velocity_limits: List[float] = field(default_factory=list)
    joint_sleep_positions: List[float] = field(default_factory=list)
    joint_state_indices: List[int] = field(default_factory=list)
    num_joints: int = 0
    name: List[str] = field(default_factory=list)


ARM_INFO = RobotInfoResponse(
    mode="position", profile_type="time", joint_names=ARM_JOINTS, joint_ids=[1, 2, 4, 6, 7, 8],
    joint_lower_limits=_f32(ARM_LOWER), joint_upper_limits=_f32(ARM_UPPER),
    joint_velocity_limits=_f32(ARM_VELOCITY), joint_sleep_positions=_f32(SLEEP_POSITIONS),
    joint_state_indices=list(range(6)), num_joints=6, name=["arm"],
)
GRIPPER_INFO = RobotInfoResponse(
    mode="pwm", profile_type="velocity", joint_names=["left_finger"], joint_ids=[9],
    joint_lower_limits=_f32([FINGER_LOWER]), joint_upper_limits=_f32([FINGER_UPPER]),
    joint_velocity_limits=[1.0], joint_sleep_positions=[0.0], joint_state_indices=[7], num_joints=1,
    name=["gripper"],
)


# ---- recording + validation -------------------------------------------------------------------
def _api_function(method):
    """Like `_api`, for the module-level functions of common_robot.robot (bound to a FakeInterbotix)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        api.check_call(api.spec_for(method.__name__), args, kwargs, name=method.__name__)
        self.calls.append(Call(method.__name__, tuple(args), dict(kwargs)))
        return method(self, *args, **kwargs)

    return wrapper


def _record(instance, name: str, args: tuple, kwargs: dict) -> None:
    instance._fake.calls.append(Call(name, tuple(args), dict(kwargs)))


_api = api.REAL.method(_record)  # validate a public method call against the real signature, record it, then run it


class _Checked(Checked):
    _API = api.REAL
    _fake: "FakeInterbotix"


class _FakeNode:
    """Stands in for `InterbotixRobotNode`: logging and destroy_node."""

    def __init__(self, node_name: str = "interbotix_robot_manipulation", namespace: Optional[str] = None):
        self.node_name, self.namespace, self.destroyed = node_name, namespace, False

    def logdebug(self, message: str, **kwargs): log.debug(message)
    def loginfo(self, message: str, **kwargs): log.info(message)
    def logwarn(self, message: str, **kwargs): log.warning(message)
    def logerror(self, message: str, **kwargs): log.error(message)
    def logfatal(self, message: str, **kwargs): log.critical(message)

    def destroy_node(self) -> None:
        self.destroyed = True


def _ros_node_class():
    """`InterbotixRobotNode(rclpy.node.Node)` of interbotix_common_modules/common_robot/robot.py, on the rclpy fake."""
    from .rclpy_fake import Node

    class InterbotixRobotNode(Node):
        def __init__(self, node_name: str = "interbotix_robot_manipulation", namespace: Optional[str] = None,
                     *args, **kwargs):
            self.node_name, self.namespace = node_name, namespace
            super().__init__(node_name, *args, namespace=namespace, **kwargs)
            self.get_logger().info("Initialized InterbotixRobotNode!")

        @property
        def destroyed(self) -> bool:
            return self._destroyed

        def logdebug(self, message: str, **kwargs): self.get_logger().debug(message, **kwargs)
        def loginfo(self, message: str, **kwargs): self.get_logger().info(message, **kwargs)
        def logwarn(self, message: str, **kwargs): self.get_logger().warning(message, **kwargs)
        def logerror(self, message: str, **kwargs): self.get_logger().error(message, **kwargs)
        def logfatal(self, message: str, **kwargs): self.get_logger().fatal(message, **kwargs)

    return InterbotixRobotNode


# ---- core -------------------------------------------------------------------------------------
class InterbotixRobotXSCore(_Checked):
    _OWNER = "core"

    def __init__(self, robot_model: str, robot_name: Optional[str] = None, topic_joint_states: str = "joint_states",
                 logging_level: api.LoggingSeverity = api.LoggingSeverity.INFO,
                 node_name: str = "interbotix_robot_manipulation", node: Optional[api.InterbotixRobotNode] = None,
                 args=None) -> None:
        fake = self._fake
        self.robot_model = robot_model
        self.robot_name = robot_model if robot_name is None else robot_name
        self.ns = "" if self.robot_name == "" else f"/{self.robot_name}"
        self.node_name, self.topic_joint_states = node_name, topic_joint_states
        self.robot_node = fake._create_node("interbotix_robot_manipulation", None) if node is None else node
        fake._wait_for_driver(self.ns)
        self.js_mutex = threading.Lock()
        self._snapshot = fake._measured_joint_state()
        self.js_index_map = dict(zip(self._snapshot.name, range(len(self._snapshot.name))))

    @property
    def joint_states(self) -> JointState:
        """Updated by the subscription only while the node spins (after robot_startup, before shutdown)."""
        if self._fake.spinning:
            self._snapshot = self._fake._measured_joint_state()
        return self._snapshot

    @_api
    def get_node(self) -> api.InterbotixRobotNode:
        return self.robot_node

    @_api
    def robot_set_operating_modes(self, cmd_type: str, name: str, mode: str, profile_type: str = "velocity",
                                  profile_velocity: int = 0, profile_acceleration: int = 0) -> None:
        self._fake._service()
        self._fake.operating_modes[(cmd_type, name)] = (mode, profile_type, profile_velocity, profile_acceleration)

    @_api
    def robot_set_motor_pid_gains(self, cmd_type: str, name: str, kp_pos: int, ki_pos: int = 0, kd_pos: int = 0,
                                  k1: int = 0, k2: int = 0, kp_vel: int = 100, ki_vel: int = 1920) -> None:
        self._fake._service()

    @_api
    def robot_set_motor_registers(self, cmd_type: str, name: str, reg: str, value: int) -> None:
        self._fake._set_register(cmd_type, name, reg, value)

    @_api
    def robot_get_motor_registers(self, cmd_type: str, name: str, reg: str) -> List[int]:
        self._fake._service()
        return [self._fake.registers.get((cmd_type, name, reg), 0)]

    @_api
    def robot_get_robot_info(self, cmd_type: str, name: str) -> RobotInfoResponse:
        self._fake._service()
        return copy.deepcopy(ARM_INFO if name == "arm" else GRIPPER_INFO)

    @_api
    def robot_torque_enable(self, cmd_type: str, name: str, enable: bool) -> None:
        self._fake._service()
        self._fake.torque[name] = bool(enable)

    @_api
    def robot_reboot_motors(self, cmd_type: str, name: str, enable: bool, smart_reboot: bool = False):
        self._fake._service()
        self._fake.torque[name] = bool(enable)

    @_api
    def robot_write_commands(self, group_name: str, commands: List[float]) -> None:
        self._fake._move_arm(commands)

    @_api
    def robot_write_joint_command(self, joint_name: str, command: float) -> None:
        if joint_name == "gripper":
            self._fake._gripper_effort(command)
        else:
            q = list(self._fake.sim.joints)
            q[ARM_JOINTS.index(joint_name)] = command
            self._fake._move_arm(q)

    @_api
    def robot_write_trajectory(self, cmd_type: str, name: str, traj_type: str,
                               raw_traj: List[Dict[float, List[float]]]) -> None:
        if raw_traj:
            self._fake._move_arm(list(raw_traj[-1].values())[0])

    @_api
    def robot_get_joint_states(self) -> JointState:
        with self.js_mutex:
            return copy.deepcopy(self.joint_states)

    @_api
    def robot_get_single_joint_state(self, name: str) -> Dict[str, List[float]]:
        js, i = self.joint_states, self.js_index_map[name]
        return {"position": js.position[i], "velocity": js.velocity[i], "effort": js.effort[i]}



# ---- arm --------------------------------------------------------------------------------------
class InterbotixArmXSInterface(_Checked):
    _OWNER = "arm"

    def __init__(self, core: api.InterbotixRobotXSCore, robot_model: str, group_name: str,
                 moving_time: float = 2.0, accel_time: float = 0.3, iterative_update_fk: bool = True) -> None:
        if robot_model != "wx250s":
            raise AttributeError(f"module 'mr_descriptions' has no attribute '{robot_model}' (the fake models wx250s only)")
        self._fake = core._fake
        self.core, self.robot_model, self.group_name = core, robot_model, group_name
        self.moving_time, self.accel_time = moving_time, accel_time
        self.iterative_update_fk = iterative_update_fk
        self.group_info = copy.deepcopy(ARM_INFO)
        n = self.group_info.num_joints
        self.initial_guesses = [[0.0] * n for _ in range(3)]
        self.initial_guesses[1][0] = np.deg2rad(-120)
        self.initial_guesses[2][0] = np.deg2rad(120)
        self.joint_commands = self._measured()
        self._update_Tsb()
        self.info_index_map = dict(zip(self.group_info.joint_names, range(n)))

    # -- internals, mirroring the private helpers of the real class --
    def _measured(self) -> list[float]:
        js = self.core.joint_states
        return [js.position[self.core.js_index_map[name]] for name in self.group_info.joint_names]

    def _update_Tsb(self) -> None:
        self.T_sb = kinematics.forward(np.asarray(self.joint_commands, dtype=float))

    def _set_trajectory_time(self, moving_time=None, accel_time=None) -> None:
        if moving_time is not None and moving_time != self.moving_time:
            self.moving_time = moving_time
            self._fake._set_register("group", self.group_name, "Profile_Velocity", int(moving_time * 1000))
        if accel_time is not None and accel_time != self.accel_time:
            self.accel_time = accel_time
            self._fake._set_register("group", self.group_name, "Profile_Acceleration", int(accel_time * 1000))

    def _publish_commands(self, positions, moving_time=None, accel_time=None, blocking=True) -> None:
        self._set_trajectory_time(moving_time, accel_time)
        self.joint_commands = list(positions)
        self._fake._move_arm(self.joint_commands)
        if blocking:
            self._fake.clock_s += self.moving_time
        if self.iterative_update_fk:
            self._update_Tsb()

    def _check_joint_limits(self, positions) -> bool:
        if any(np.isnan(positions)):
            log.warning("Rejecting NaN values in position command")
            return False
        theta_list = [int(p * 1000) / 1000.0 for p in positions]
        info = self.group_info
        for i in range(info.num_joints):
            if not info.joint_lower_limits[i] <= theta_list[i] <= info.joint_upper_limits[i]:
                return False
            if abs(theta_list[i] - self.joint_commands[i]) / float(self.moving_time) > info.joint_velocity_limits[i]:
                return False
        return True

    def _check_single_joint_limit(self, joint_name: str, position: float) -> bool:
        if np.isnan(position):
            log.warning("Rejecting NaN value in position command")
            return False
        theta = int(position * 1000) / 1000.0
        i = self.info_index_map[joint_name]
        info = self.group_info
        if not info.joint_lower_limits[i] <= theta <= info.joint_upper_limits[i]:
            return False
        return abs(theta - self.joint_commands[i]) / float(self.moving_time) <= info.joint_velocity_limits[i]

    def _wrap_theta_list(self, theta_list) -> np.ndarray:
        theta_list = (np.asarray(theta_list, dtype=float) + np.pi) % REV - np.pi
        for i in range(len(theta_list)):
            if round(theta_list[i], 3) < round(self.group_info.joint_lower_limits[i], 3):
                theta_list[i] += REV
            elif round(theta_list[i], 3) > round(self.group_info.joint_upper_limits[i], 3):
                theta_list[i] -= REV
        return theta_list

    def _solve(self, T_sd, custom_guess=None):
        guesses = self.initial_guesses if custom_guess is None else [custom_guess]
        theta_list = None
        for guess in guesses:
            theta_list, success = kinematics.inverse(np.asarray(T_sd, dtype=float), np.asarray(guess, dtype=float))
            theta_list = np.array(theta_list, dtype=float)
            if success:
                theta_list = self._wrap_theta_list(theta_list)
                if self._check_joint_limits(theta_list):
                    return theta_list, True
        return theta_list, False

    # -- public API --
    @_api
    def set_trajectory_time(self, moving_time: float = None, accel_time: float = None) -> None:
        self._set_trajectory_time(moving_time, accel_time)

    @_api
    def set_joint_positions(self, joint_positions: List[float], moving_time: float = None,
                            accel_time: float = None, blocking: bool = True) -> bool:
        if not self._check_joint_limits(joint_positions):
            return False
        self._publish_commands(joint_positions, moving_time, accel_time, blocking)
        return True

    @_api
    def go_to_home_pose(self, moving_time: float = None, accel_time: float = None, blocking: bool = True) -> None:
        self._publish_commands([0.0] * self.group_info.num_joints, moving_time, accel_time, blocking)

    @_api
    def go_to_sleep_pose(self, moving_time: float = None, accel_time: float = None, blocking: bool = True) -> None:
        self._publish_commands(list(self.group_info.joint_sleep_positions), moving_time, accel_time, blocking)

    @_api
    def set_single_joint_position(self, joint_name: str, position: float, moving_time: float = None,
                                  accel_time: float = None, blocking: bool = True) -> bool:
        if not self._check_single_joint_limit(joint_name, position):
            return False
        self._set_trajectory_time(moving_time, accel_time)
        self.joint_commands[self.core.js_index_map[joint_name]] = position
        self._fake._move_arm(self.joint_commands)
        if blocking:
            self._fake.clock_s += self.moving_time
        if self.iterative_update_fk:
            self._update_Tsb()
        return True

    @_api
    def set_ee_pose_matrix(self, T_sd: np.ndarray, custom_guess: List[float] = None, execute: bool = True,
                           moving_time: float = None, accel_time: float = None, blocking: bool = True):
        return self._go_to_pose(T_sd, custom_guess, execute, moving_time, accel_time, blocking)

    def _go_to_pose(self, T_sd, custom_guess, execute, moving_time, accel_time, blocking):
        theta_list, success = self._solve(T_sd, custom_guess)
        if not success:
            log.warning("No valid pose could be found. Will not execute")
            return theta_list, False
        if execute:
            self._publish_commands(theta_list, moving_time, accel_time, blocking)
            self.T_sb = np.array(T_sd, dtype=float)
        return theta_list, True

    @_api
    def set_ee_pose_components(self, x: float = 0, y: float = 0, z: float = 0, roll: float = 0, pitch: float = 0,
                               yaw: float = None, custom_guess: List[float] = None, execute: bool = True,
                               moving_time: float = None, accel_time: float = None, blocking: bool = True):
        if self.group_info.num_joints < 6 or yaw is None:
            yaw = math.atan2(y, x)
        T_sd = np.identity(4)
        T_sd[:3, :3] = rpy_to_matrix(roll, pitch, yaw)
        T_sd[:3, 3] = [x, y, z]
        return self._go_to_pose(T_sd, custom_guess, execute, moving_time, accel_time, blocking)

    @_api
    def set_ee_cartesian_trajectory(self, x: float = 0, y: float = 0, z: float = 0, roll: float = 0,
                                    pitch: float = 0, yaw: float = 0, moving_time: float = None,
                                    wp_moving_time: float = 0.2, wp_accel_time: float = 0.1,
                                    wp_period: float = 0.05, blocking: bool = True) -> bool:
        if moving_time is None:
            moving_time = self.moving_time
        accel_time = self.accel_time
        n = int(moving_time / wp_period)
        rpy = matrix_to_rpy(self.T_sb[:3, :3])
        T_sy = np.identity(4)
        T_sy[:3, :3] = rpy_to_matrix(0.0, 0.0, rpy[2])
        T_yb = np.linalg.inv(T_sy) @ self.T_sb
        rpy[2] = 0.0
        joint_positions, T_sd = list(self.joint_commands), self.T_sb
        for i in range(n):
            T_yb[:3, 3] += np.array([x, y, z]) / n
            rpy = rpy + np.array([roll, pitch, yaw]) / n
            T_yb[:3, :3] = rpy_to_matrix(*rpy)
            T_sd = T_sy @ T_yb
            theta_list, success = self._solve(T_sd, joint_positions)
            if not success:
                log.warning(f"Only {i / n * 100:.2f}% of trajectory successfully planned. Trajectory will not be executed.")
                return False
            joint_positions = list(theta_list)
        self._set_trajectory_time(wp_moving_time, wp_accel_time)
        self._fake._move_arm(joint_positions)
        if blocking:
            self._fake.clock_s += n * wp_period + wp_moving_time
        self.T_sb, self.joint_commands = np.array(T_sd), joint_positions
        self._set_trajectory_time(moving_time, accel_time)
        return True

    @_api
    def get_joint_commands(self) -> List[float]:
        return list(self.joint_commands)

    @_api
    def get_single_joint_command(self, joint_name: str) -> float:
        return self.joint_commands[self.info_index_map[joint_name]]

    @_api
    def get_ee_pose_command(self) -> np.ndarray:
        return np.array(self.T_sb)

    @_api
    def get_ee_pose(self) -> np.ndarray:
        return kinematics.forward(np.asarray(self._measured()))

    @_api
    def capture_joint_positions(self) -> None:
        self.joint_commands = self._measured()
        self._update_Tsb()

    @_api
    def get_joint_positions(self) -> List[float]:
        with self.core.js_mutex:
            return self._measured()

    @_api
    def get_joint_velocities(self) -> List[float]:
        return [0.0] * self.group_info.num_joints

    @_api
    def get_joint_efforts(self) -> List[float]:
        return [0.0] * self.group_info.num_joints

    @_api
    def get_number_of_joints(self) -> int:
        return self.group_info.num_joints


# ---- gripper ----------------------------------------------------------------------------------
class InterbotixGripperXSInterface(_Checked):
    _OWNER = "gripper"

    def __init__(self, core: api.InterbotixRobotXSCore, gripper_name: str, gripper_pressure: float = 0.5,
                 gripper_pressure_lower_limit: int = 150, gripper_pressure_upper_limit: int = 350) -> None:
        self._fake = core._fake
        self.core, self.gripper_name = core, gripper_name
        self.gripper_pressure_lower_limit = gripper_pressure_lower_limit
        self.gripper_pressure_upper_limit = gripper_pressure_upper_limit
        self.gripper_value = gripper_pressure_lower_limit + gripper_pressure * (
            gripper_pressure_upper_limit - gripper_pressure_lower_limit)
        self.gripper_info = copy.deepcopy(GRIPPER_INFO)
        self.left_finger_index = core.js_index_map[self.gripper_info.joint_names[0]]
        self.left_finger_lower_limit = self.gripper_info.joint_lower_limits[0]
        self.left_finger_upper_limit = self.gripper_info.joint_upper_limits[0]
        self.gripper_moving = False
        self._fake.clock_s += 0.5  # the real constructor sleeps 0.5 s

    def _controller(self, effort: float, delay: float) -> None:
        with self.core.js_mutex:
            pos = self.core.joint_states.position[self.left_finger_index]
        # Upstream publishes (and sleeps) only when the fingers can still move in that direction.
        if (effort > 0 and pos < self.left_finger_upper_limit) or (effort < 0 and pos > self.left_finger_lower_limit):
            self._fake._gripper_effort(effort)
            self.gripper_moving = True
            self._fake.clock_s += delay

    def _finger(self) -> float:
        return self.core.joint_states.position[self.left_finger_index]

    @_api
    def gripper_controller(self, effort: float, delay: float) -> None:
        self._controller(effort, delay)

    @_api
    def set_pressure(self, pressure: float) -> None:
        self.gripper_value = self.gripper_pressure_lower_limit + pressure * (
            self.gripper_pressure_upper_limit - self.gripper_pressure_lower_limit)

    @_api
    def release(self, delay: float = 1.0) -> None:
        self._controller(self.gripper_value, delay)

    @_api
    def grasp(self, delay: float = 1.0) -> None:
        self._controller(-self.gripper_value, delay)

    @_api
    def get_gripper_position(self) -> float:
        return self.core.joint_states.position[self.core.js_index_map[self.gripper_name]]

    @_api
    def get_gripper_velocity(self) -> float:
        return 0.0

    @_api
    def get_gripper_effort(self) -> float:
        return 0.0

    @_api
    def get_finger_position(self) -> float:
        return self._finger()


# ---- manipulator ------------------------------------------------------------------------------
class InterbotixManipulatorXS(_Checked):
    _OWNER = "bot"

    @_api
    def __init__(
        self,
        robot_model: str,
        group_name: str = "arm",
        gripper_name: str = "gripper",
        robot_name: str = None,
        moving_time: float = 2.0,
        accel_time: float = 0.3,
        gripper_pressure: float = 0.5,
        gripper_pressure_lower_limit: int = 150,
        gripper_pressure_upper_limit: int = 350,
        topic_joint_states: str = "joint_states",
        logging_level: api.LoggingSeverity = api.LoggingSeverity.INFO,
        node_name: str = "robot_manipulation",
        node: api.InterbotixRobotNode = None,
        iterative_update_fk: bool = True,
        args=None,
    ) -> None:
        fake = self._fake
        self.core = fake.classes["core"](robot_model=robot_model, robot_name=robot_name,
                                         topic_joint_states=topic_joint_states, logging_level=logging_level,
                                         node_name=node_name, node=node, args=args)
        self.arm = fake.classes["arm"](core=self.core, robot_model=robot_model, group_name=group_name,
                                       moving_time=moving_time, accel_time=accel_time,
                                       iterative_update_fk=iterative_update_fk)
        if gripper_name is not None:  # upstream: without a gripper the attribute does not exist at all
            self.gripper = fake.classes["gripper"](core=self.core, gripper_name=gripper_name,
                                                   gripper_pressure=gripper_pressure,
                                                   gripper_pressure_lower_limit=gripper_pressure_lower_limit,
                                                   gripper_pressure_upper_limit=gripper_pressure_upper_limit)
        self.robot_name = robot_name
        fake.bots.append(self)

    @_api
    def get_node(self) -> api.InterbotixRobotNode:
        return self.core.robot_node


# ---- the driver, the ROS graph and the module functions ---------------------------------------
class FakeInterbotix:
    """State behind one `install()`: the simulated arm, xs_sdk, the global node and the call log."""

    def __init__(self, sim: Tabletop, driver_running: bool = True, ros=None):
        self.sim = sim
        self.ros = ros  # an installed rclpy_fake.FakeRos: the global node is then an rclpy node
        self.node_class = _FakeNode if ros is None else _ros_node_class()
        self.calls: list[Call] = []
        self.bots: list[InterbotixManipulatorXS] = []
        self.registers: dict[tuple[str, str, str], int] = {}
        self.operating_modes: dict[tuple[str, str], tuple] = {}
        self.torque: dict[str, bool] = {"all": True}
        self.clock_s = 0.0  # virtual time spent in blocking motions and gripper delays
        self.global_node = None  # the node_class instance create_interbotix_global_node made
        self.is_up = False  # upstream never resets this flag, even in robot_shutdown()
        self.shut_down = False
        self._cv = threading.Condition()
        self._driver_running = driver_running
        self._uninstalled = False
        self.classes = {
            owner: type(cls.__name__, (cls,), {"_fake": self, "__module__": cls.__module__})
            for owner, cls in (("core", InterbotixRobotXSCore), ("arm", InterbotixArmXSInterface),
                               ("gripper", InterbotixGripperXSInterface), ("bot", InterbotixManipulatorXS))
        }

    # -- test controls --
    def start_driver(self) -> None:
        """Bring xs_sdk up: constructors blocked waiting for its services continue."""
        with self._cv:
            self._driver_running = True
            self._cv.notify_all()

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def calls_named(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    @property
    def spinning(self) -> bool:
        return self.is_up and not self.shut_down

    # -- module functions (common_robot.robot) --
    @_api_function
    def robot_startup(self, node: Optional[api.InterbotixRobotNode] = None,
                      node_name: str = "interbotix_robot_manipulation", namespace: Optional[str] = None) -> None:
        if node is None and self.global_node is None:
            self._create_node(node_name, namespace)
        if self.is_up:
            raise api.InterbotixException("Startup has already been requested")
        self.is_up = True

    @_api_function
    def robot_shutdown(self, node: Optional[api.InterbotixRobotNode] = None) -> None:
        node = node or self.global_node
        if node is None:
            raise NameError("name '__interbotix_global_node' is not defined")
        node.destroy_node()
        if self.ros is not None:
            sys.modules["rclpy"].shutdown()  # upstream: rclpy.shutdown(), which raises if rclpy is already down
        self.shut_down = True

    @_api_function
    def create_interbotix_global_node(self, node_name: str = "interbotix_robot_manipulation", namespace: str = None,
                                      *args, **kwargs) -> api.InterbotixRobotNode:
        return self._create_node(node_name, namespace)

    @_api_function
    def get_interbotix_global_node(self) -> api.InterbotixRobotNode:
        if self.global_node is None:
            raise NameError("name '__interbotix_global_node' is not defined")
        return self.global_node

    @_api_function
    def interbotix_is_up(self) -> bool:
        return self.is_up

    def _create_node(self, node_name: str, namespace: Optional[str]):
        if self.global_node is not None:
            raise api.InterbotixException("Tried to create an Interbotix global node but one already exists.")
        if self.ros is not None:
            rclpy = sys.modules["rclpy"]  # the rclpy fake holding self.ros
            if not rclpy.ok():
                rclpy.init()
        self.global_node = self.node_class(node_name=node_name, namespace=namespace)
        return self.global_node

    # -- the simulated driver --
    def _wait_for_driver(self, ns: str) -> None:
        """Like the real core: wait for the xs_sdk services forever, complaining every 5 s."""
        with self._cv:
            while not self._driver_running:
                if self._uninstalled:
                    raise RuntimeError("The fake Interbotix API was uninstalled while waiting for the xs_sdk driver.")
                if not self._cv.wait(timeout=5.0):
                    log.error(f"Failed to find services under namespace '{ns}'. Is the xs_sdk running under that namespace?")

    def _check_alive(self) -> None:
        if self.shut_down:
            raise RuntimeError("Tried to use a handle that has been destroyed (the node was shut down by robot_shutdown()).")

    def _service(self) -> None:
        self._check_alive()

    def _set_register(self, cmd_type: str, name: str, reg: str, value: int) -> None:
        self._check_alive()
        self.registers[(cmd_type, name, reg)] = int(value)

    def _move_arm(self, positions) -> None:
        self._check_alive()
        if not (self.torque.get("all", True) and self.torque.get("arm", True)):
            return  # torque off: the motors ignore position goals
        q = np.clip(np.asarray(positions, dtype=float), kinematics.JOINT_LIMITS[:, 0], kinematics.JOINT_LIMITS[:, 1])
        self.sim.set_joints(q)

    def _gripper_effort(self, effort: float) -> None:
        self._check_alive()
        if effort != 0:
            self.sim.set_gripper(closed=effort < 0)

    def _measured_joint_state(self) -> JointState:
        finger = FINGER_LOWER + (FINGER_UPPER - FINGER_LOWER) * float(self.sim.finger_gap) / GRIPPER_FULL_OPENING
        # The gripper motor angle is modelled as linear in the finger position (the real one is not).
        gripper_angle = (finger - FINGER_LOWER) / (FINGER_UPPER - FINGER_LOWER) * 2.0 - 1.0
        position = [float(v) for v in self.sim.joints] + [gripper_angle, finger, -finger]
        n = len(JOINT_STATE_NAMES)
        return JointState(list(JOINT_STATE_NAMES), position, [0.0] * n, [0.0] * n)

    # -- modules --
    def modules(self) -> dict[str, types.ModuleType]:
        mods = {name: types.ModuleType(name) for name in MODULE_NAMES}
        for name, mod in mods.items():
            mod.__doc__ = f"Fake of {name} (fakes.interbotix)."
            if name.count(".") < 2 or name.endswith("common_robot"):
                mod.__path__ = []  # a package
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(mods[parent], child, mod)
        arm = mods["interbotix_xs_modules.xs_robot.arm"]
        arm.InterbotixManipulatorXS = self.classes["bot"]
        arm.InterbotixArmXSInterface = self.classes["arm"]
        arm.InterbotixRobotXSCore = self.classes["core"]
        arm.InterbotixGripperXSInterface = self.classes["gripper"]
        arm.REV = REV
        mods["interbotix_xs_modules.xs_robot.gripper"].InterbotixGripperXSInterface = self.classes["gripper"]
        mods["interbotix_xs_modules.xs_robot.core"].InterbotixRobotXSCore = self.classes["core"]
        robot = mods["interbotix_common_modules.common_robot.robot"]
        for fn in ("robot_startup", "robot_shutdown", "create_interbotix_global_node",
                   "get_interbotix_global_node", "interbotix_is_up"):
            setattr(robot, fn, getattr(self, fn))
        robot.InterbotixRobotNode = self.node_class
        robot.InterbotixException = api.InterbotixException
        mods["interbotix_common_modules.common_robot.exceptions"].InterbotixException = api.InterbotixException
        return mods

    def _uninstall(self) -> None:
        with self._cv:
            self._uninstalled = True
            self._cv.notify_all()


@contextlib.contextmanager
def install(sim: Tabletop, driver_running: bool = True, ros=None):
    """Register the fake under the real Interbotix module names for the duration of the block.

    Yields the `FakeInterbotix` (call log, driver control). On exit the previous modules (if any)
    are restored, and constructors still waiting for the driver raise instead of hanging. `ros`: the
    `FakeRos` of an enclosing `rclpy_fake.install()`, to make the global node an rclpy node of that process.
    """
    fake = FakeInterbotix(sim, driver_running, ros)
    try:
        with swapped(fake.modules()):
            yield fake
    finally:
        fake._uninstall()


__all__ = ["Call", "FakeInterbotix", "InterbotixArmXSInterface", "InterbotixGripperXSInterface",
           "InterbotixManipulatorXS", "InterbotixRobotXSCore", "JointState", "RobotInfoResponse", "install"]
