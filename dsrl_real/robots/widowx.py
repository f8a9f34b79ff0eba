"""The WidowX 250 6DOF through the Interbotix ROS 2 Python API (humble, 2024): the `Robot` protocol.

Needs the Interbotix workspace (not on PyPI) and a running driver:
    ros2 launch interbotix_xsarm_control xsarm_control.launch.py robot_model:=wx250s

API facts this adapter relies on (see `tests/fakes/interbotix_api.py` for the signatures):
* the constructor blocks forever while the driver is down, so `connect` bounds the wait;
* `moving_time`/`accel_time` are sticky, and joint commands are rejected when a joint would move
  faster than its velocity limit *at the stored moving_time*: every slow move (reset, home, sleep)
  passes its own timing explicitly, otherwise it would inherit the 0.2 s control period;
* `set_ee_pose_components(..., execute=False)` only solves IK (and checks limits);
  `set_joint_positions(..., blocking=False)` returns at once;
* `grasp()`/`release()` sleep `delay` seconds, so the control loop passes `delay=0.0`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from ..config import RobotConfig
from ..geometry import matrix_to_pose, wrap_angle
from .base import PoseTarget, RobotState

log = logging.getLogger(__name__)

FINGER_CLOSED_M, FINGER_OPEN_M = 0.015, 0.037  # left_finger joint limits of the wx250s URDF
SLOW_MOVE_S, SLOW_ACCEL_S = 2.0, 0.3  # reset / home / sleep moves
GRIPPER_RESET_DELAY_S = 1.0
SLEEP_TOLERANCE_RAD = 0.1  # every arm joint this close to its sleep position: resting, safe to torque off
STEP_FRACTIONS = (1.0, 0.5, 0.25, 0.125)  # tried in turn when the full step has no IK solution
DRIVER_COMMAND = "ros2 launch interbotix_xsarm_control xsarm_control.launch.py robot_model:={model}"


def _import_interbotix():
    try:
        from interbotix_common_modules.common_robot import robot as common_robot
        from interbotix_xs_modules.xs_robot import arm as xs_arm
    except ImportError as err:
        if (err.name or "").startswith("interbotix"):
            msg = (
                "The WidowX robot needs the Interbotix ROS 2 Python API (package `interbotix_xs_modules`), "
                "which is not on PyPI: install the Interbotix ROS 2 workspace (xsarm_amd64_install.sh, see "
                "https://docs.trossenrobotics.com/interbotix_xsarms_docs/ros_interface/ros2/software_setup.html) "
                "and source its install/setup.bash before running."
            )
        else:
            msg = (
                f"The Interbotix API could not import '{err.name}'; source ROS 2 and the Interbotix workspace "
                "(source /opt/ros/humble/setup.bash && source ~/interbotix_ws/install/setup.bash) before running."
            )
        raise ImportError(msg, name=err.name) from err
    return xs_arm, common_robot


class WidowXRobot:
    def __init__(self, bot, cfg: RobotConfig | None = None, shutdown=None):
        """Wrap an already-constructed (and started) `InterbotixManipulatorXS`; `connect` is the usual way."""
        cfg = cfg or RobotConfig(kind="widowx")
        self.bot, self.arm, self.gripper = bot, bot.arm, bot.gripper
        self.start_xyz = np.asarray(cfg.start_xyz, dtype=float)
        self.start_rpy = np.asarray(cfg.start_rpy, dtype=float)
        self._shutdown = shutdown
        self._torque_off = cfg.torque_off_on_close
        self._gripper_open: bool | None = None  # unknown until reset
        self._closed = False
        self.refusals = 0  # targets refused as unreachable (nothing sent)
        self.shrunk_steps = 0  # targets replaced by a shorter reachable step
        self.last_step_fraction = 1.0

    @classmethod
    def from_bot(cls, bot, cfg: RobotConfig | None = None, shutdown=None) -> "WidowXRobot":
        """For tests and notebooks: wrap a bot built elsewhere (robot_startup() already called)."""
        return cls(bot, cfg, shutdown)

    @classmethod
    def connect(cls, cfg: RobotConfig) -> "WidowXRobot":
        """Construct the Interbotix robot (bounded wait for the driver) and start its ROS node."""
        xs_arm, common_robot = _import_interbotix()
        result: dict = {}
        done = threading.Event()

        def construct():
            try:
                result["bot"] = xs_arm.InterbotixManipulatorXS(
                    robot_model=cfg.robot_model, group_name="arm", gripper_name="gripper"
                )
            except BaseException as err:  # noqa: BLE001 - G2 calls sys.exit(1); report whatever happened
                result["error"] = err
            finally:
                done.set()

        threading.Thread(target=construct, name="interbotix-connect", daemon=True).start()
        if not done.wait(cfg.driver_timeout_s):
            raise RuntimeError(
                f"The WidowX driver did not answer within {cfg.driver_timeout_s:g} s; start it with "
                f"`{DRIVER_COMMAND.format(model=cfg.robot_model)}` (and check the arm is powered and on USB), "
                "then run again."
            )
        if "error" in result:
            err = result["error"]
            raise RuntimeError(
                f"Connecting to the WidowX failed ({type(err).__name__}: {err}); check that "
                f"`{DRIVER_COMMAND.format(model=cfg.robot_model)}` is running and restart this program."
            ) from err
        common_robot.robot_startup()
        return cls(result["bot"], cfg, shutdown=common_robot.robot_shutdown)

    # ---- Robot protocol -------------------------------------------------------------------------
    def reset(self) -> None:
        # Set the slow timing first: the IK limit check uses the stored moving_time.
        self.arm.set_trajectory_time(moving_time=SLOW_MOVE_S, accel_time=SLOW_ACCEL_S)
        (x, y, z), (roll, pitch, yaw) = self.start_xyz, self.start_rpy
        _, ok = self.arm.set_ee_pose_components(
            x=float(x), y=float(y), z=float(z), roll=float(roll), pitch=float(pitch), yaw=float(yaw),
            moving_time=SLOW_MOVE_S, accel_time=SLOW_ACCEL_S, blocking=True,
        )
        if not ok:
            raise RuntimeError(
                f"The start pose robot.start_xyz={self.start_xyz.tolist()} start_rpy={self.start_rpy.tolist()} "
                "has no inverse-kinematics solution within the joint limits; choose one inside the workspace."
            )
        self.gripper.release(delay=GRIPPER_RESET_DELAY_S)
        self._gripper_open = True

    def home(self) -> None:
        self.arm.go_to_home_pose(moving_time=SLOW_MOVE_S, accel_time=SLOW_ACCEL_S, blocking=True)

    def state(self) -> RobotState:
        xyz, rpy = matrix_to_pose(self.arm.get_ee_pose())
        finger = self.gripper.get_finger_position()
        opening = (finger - FINGER_CLOSED_M) / (FINGER_OPEN_M - FINGER_CLOSED_M)
        joints = np.asarray(self.arm.get_joint_positions(), dtype=float)
        return RobotState(xyz=xyz, rpy=rpy, gripper=float(np.clip(opening, 0.0, 1.0)), joints=joints)

    def command(self, target: PoseTarget, duration_s: float) -> bool:
        theta, fraction = self._solve(target)
        if theta is None:
            self.refusals += 1
            log.warning("Refused unreachable target xyz=%s rpy=%s (no IK solution even for 1/8 of the step).",
                        np.round(target.xyz, 3).tolist(), np.round(target.rpy, 3).tolist())
            return False
        self.last_step_fraction = fraction
        self.shrunk_steps += fraction < 1.0
        sent = self.arm.set_joint_positions(
            [float(t) for t in theta], moving_time=float(duration_s), accel_time=float(duration_s) / 4, blocking=False
        )
        if not sent:  # cannot happen after a successful IK check with the same limits, but never hide it
            self.refusals += 1
            log.warning("The arm rejected joint command %s.", np.round(theta, 3).tolist())
            return False
        if target.gripper_open != self._gripper_open:
            (self.gripper.release if target.gripper_open else self.gripper.grasp)(delay=0.0)
            self._gripper_open = target.gripper_open
        return True

    def stop(self) -> None:
        # Make the measured joints the command, then hold them (a zero-length move passes every check).
        self.arm.capture_joint_positions()
        hold = self.arm.get_joint_commands()
        if not self.arm.set_joint_positions(hold, blocking=False):
            self.bot.core.robot_write_commands(group_name="arm", commands=hold)  # bypasses the limit checks

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.arm.go_to_sleep_pose(moving_time=SLOW_MOVE_S, accel_time=SLOW_ACCEL_S, blocking=True)
            if self._torque_off:
                measured = np.asarray(self.arm.get_joint_positions(), dtype=float)
                sleep = np.asarray(self.arm.group_info.joint_sleep_positions, dtype=float)
                if measured.shape == sleep.shape and np.all(np.abs(measured - sleep) <= SLEEP_TOLERANCE_RAD):
                    self.bot.core.robot_torque_enable(cmd_type="group", name="all", enable=False)
                else:  # without torque an arm anywhere but resting in its sleep pose drops
                    log.warning("The arm did not reach its sleep pose (joints %s, sleep pose %s); its torque stays on so "
                                "that it cannot drop: support it before powering it off.",
                                np.round(measured, 3).tolist(), np.round(sleep, 3).tolist())
        finally:
            shutdown = self._shutdown or _import_interbotix()[1].robot_shutdown
            shutdown()

    # ---- helpers ------------------------------------------------------------------------------
    def _solve(self, target: PoseTarget) -> tuple[np.ndarray | None, float]:
        """IK for the target, else for the step towards it shrunk by halves; (None, 0) if nothing is reachable."""
        guess = [float(q) for q in self.arm.get_joint_positions()]
        xyz0, rpy0 = matrix_to_pose(self.arm.get_ee_pose())
        dxyz = np.asarray(target.xyz, dtype=float) - xyz0
        drpy = wrap_angle(np.asarray(target.rpy, dtype=float) - rpy0)
        if not (np.all(np.isfinite(dxyz)) and np.all(np.isfinite(drpy))):
            return None, 0.0
        for fraction in STEP_FRACTIONS:
            (x, y, z), (roll, pitch, yaw) = xyz0 + fraction * dxyz, rpy0 + fraction * drpy
            theta, ok = self.arm.set_ee_pose_components(
                x=float(x), y=float(y), z=float(z), roll=float(roll), pitch=float(pitch), yaw=float(yaw),
                custom_guess=guess, execute=False,
            )
            if ok:
                return np.asarray(theta, dtype=float), fraction
        return None, 0.0
