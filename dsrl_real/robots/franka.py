"""A Franka (FR3 or Panda) under ROS 2 through franka_ros2: the `Robot` protocol.

Needs ROS 2 with franka_ros2 (not on PyPI) and, on the robot PC:
    ros2 launch franka_bringup franka.launch.py robot_ip:=<fci-ip>
plus a Cartesian controller that takes `geometry_msgs/PoseStamped` targets on `robot.franka.command_topic`.
franka_ros2 ships none that listens on a topic; the usual choice (DROID also drives the arm by
Cartesian impedance) is a port of franka_ros's cartesian_impedance_example_controller, which
listens on `<controller>/equilibrium_pose`.

What this adapter relies on (facts and sources in `tests/fakes/ros_api.py`):
* state: the robot-state broadcaster's `~/current_pose` (PoseStamped, O_T_EE in the base frame)
  and `~/measured_joint_states`; recent releases publish them best-effort, so we subscribe with the
  sensor-data QoS (best-effort also hears the reliable publishers of older releases). They come at
  up to 1 kHz; the broadcaster's `convenience_publish_rate: 100` spares Python the extra messages;
* gripper: franka_gripper's actions `<ns>/homing`, `<ns>/move`, `<ns>/grasp` and `<ns>/joint_states`
  (each finger at width / 2); goals during the control loop are sent without waiting for them;
* orientation is reported relative to `robot.franka.reference_rpy` as R = R(rpy) @ R_ref, so with the
  default (gripper pointing down) the policy's rpy stays near 0 and the safety box never straddles +-pi;
* the impedance controller tracks each target itself: `command` publishes the target and returns,
  its `duration_s` is not needed; reset and home moves are interpolated at `move_speed`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import RobotConfig
from ..geometry import matrix_to_rpy, rpy_to_matrix
from .base import PoseTarget, RobotState
from .ros_runtime import import_messages, import_rclpy, shared_node, wait_future

log = logging.getLogger(__name__)

MOVE_RATE_HZ = 50.0  # targets per second while interpolating reset and home moves
MOVE_ANGULAR_SPEED = 0.5  # rad/s of those moves
REACH_TOLERANCE_M, REACH_TOLERANCE_RAD = 0.01, 0.05
SETTLE_TIMEOUT_S = 3.0  # after the last interpolated target, how long the arm may take to get there
GOAL_SUCCEEDED = 4  # action_msgs/GoalStatus.STATUS_SUCCEEDED
DRIVER_COMMAND = "ros2 launch franka_bringup franka.launch.py robot_ip:=<fci-ip>"
FRANKA_MSGS_HINT = "build franka_ros2's franka_msgs in your workspace: https://github.com/frankaemika/franka_ros2"


def _rotation():
    from scipy.spatial.transform import Rotation  # scipy is slow to import; only a connected Franka needs it

    return Rotation


@dataclass(frozen=True)
class _Pose:
    xyz: np.ndarray
    quat: tuple[float, float, float, float]  # x, y, z, w in the base frame
    received_s: float  # clock() on arrival

    @property
    def rot(self) -> np.ndarray:
        return _rotation().from_quat(self.quat).as_matrix()


class FrankaRobot:
    def __init__(self, node, cfg: RobotConfig, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        """Create the ROS entities on a spinning `node`; `connect` is the usual way (it waits for the driver)."""
        import_rclpy()
        from rclpy.action import ActionClient
        from rclpy.qos import qos_profile_sensor_data

        (self.PoseStamped,) = import_messages("geometry_msgs.msg", "PoseStamped")
        (self.JointState,) = import_messages("sensor_msgs.msg", "JointState")
        (self.Header,) = import_messages("std_msgs.msg", "Header")
        self.Homing, self.Move, self.Grasp = import_messages("franka_msgs.action", "Homing", "Move", "Grasp",
                                                             package_hint=FRANKA_MSGS_HINT)
        (self.GraspEpsilon,) = import_messages("franka_msgs.msg", "GraspEpsilon", package_hint=FRANKA_MSGS_HINT)
        self.node, self.cfg, self.f = node, cfg, cfg.franka
        self._sleep, self._clock = sleep, clock
        self._reference = rpy_to_matrix(*self.f.reference_rpy)
        self.start_xyz = np.asarray(cfg.start_xyz, dtype=float)
        self.start_rpy = np.asarray(cfg.start_rpy, dtype=float)
        self._lock = threading.Lock()
        self._new_pose = threading.Condition(self._lock)
        self._pose: _Pose | None = None
        self._joints: np.ndarray | None = None
        self._width: float | None = None
        self._halted = False  # after stop(): no motion command is sent until reset()
        self._gripper_open: bool | None = None
        self._closed = False
        self.refusals = 0  # targets refused (non-finite, or sent after stop()): nothing was sent
        ns = self.f.gripper_namespace.rstrip("/")
        self.gripper_topic = f"{ns}/joint_states"
        self._publisher = node.create_publisher(self.PoseStamped, self.f.command_topic, 1)
        self._subscriptions = [
            node.create_subscription(self.PoseStamped, self.f.pose_topic, self._on_pose, qos_profile_sensor_data),
            node.create_subscription(self.JointState, self.f.joint_state_topic, self._on_joints, qos_profile_sensor_data),
            node.create_subscription(self.JointState, self.gripper_topic, self._on_fingers, qos_profile_sensor_data),
        ]
        self._actions = {name: ActionClient(node, kind, f"{ns}/{name}")
                         for name, kind in (("homing", self.Homing), ("move", self.Move), ("grasp", self.Grasp))}

    @classmethod
    def connect(cls, cfg: RobotConfig, node=None, sleep: Callable[[float], None] = time.sleep) -> "FrankaRobot":
        """Subscribe, wait (at most robot.driver_timeout_s) for the controller, the state and the gripper, home the gripper."""
        robot = cls(node if node is not None else shared_node(), cfg, sleep=sleep)
        try:
            robot._wait_for_driver(cfg.driver_timeout_s)
            robot._gripper_goal("homing", robot.Homing.Goal())
        except BaseException:
            robot._release()
            raise
        return robot

    # ---- ROS callbacks (executor thread) ---------------------------------------------------------
    def _on_pose(self, msg) -> None:  # up to 1 kHz: keep it cheap, convert when read
        p, q = msg.pose.position, msg.pose.orientation
        with self._new_pose:
            self._pose = _Pose(np.array([p.x, p.y, p.z]), (q.x, q.y, q.z, q.w), self._clock())
            self._new_pose.notify_all()

    def _on_joints(self, msg) -> None:
        with self._lock:
            self._joints = np.asarray(msg.position, dtype=float)

    def _on_fingers(self, msg) -> None:
        with self._lock:
            self._width = float(sum(msg.position))  # each finger sits at width / 2

    # ---- Robot protocol -------------------------------------------------------------------------
    def reset(self) -> None:
        self._halted = False
        self._move_to(self.start_xyz, rpy_to_matrix(*self.start_rpy) @ self._reference, "start")
        self._gripper_goal("move", self.Move.Goal(width=float(self.f.gripper_max_width), speed=float(self.f.gripper_speed)))
        self._gripper_open = True

    def home(self) -> None:
        self._halted = False
        self._move_to(np.asarray(self.f.home_xyz, dtype=float), rpy_to_matrix(*self.f.home_rpy) @ self._reference, "home")

    def state(self) -> RobotState:
        pose = self._fresh_pose()
        with self._lock:
            width, joints = self._width, self._joints
        opening = 1.0 if width is None else float(np.clip(width / self.f.gripper_max_width, 0.0, 1.0))
        return RobotState(xyz=pose.xyz.copy(), rpy=matrix_to_rpy(pose.rot @ self._reference.T), gripper=opening,
                          joints=np.zeros(0) if joints is None else joints.copy())

    def command(self, target: PoseTarget, duration_s: float) -> bool:
        xyz, rpy = np.asarray(target.xyz, dtype=float), np.asarray(target.rpy, dtype=float)
        if self._halted:
            self.refusals += 1
            log.warning("Refused a target after stop(): the arm holds until the next reset.")
            return False
        if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(rpy))):
            self.refusals += 1
            log.warning("Refused a non-finite target xyz=%s rpy=%s (nothing sent).", xyz.tolist(), rpy.tolist())
            return False
        self._publish_target(xyz, rpy_to_matrix(*rpy) @ self._reference)
        if target.gripper_open != self._gripper_open:
            self._send_gripper(target.gripper_open)
        return True

    def stop(self) -> None:
        """Hold the measured pose (the last one received) and refuse targets until the next reset."""
        self._halted = True
        with self._lock:
            pose = self._pose
        if pose is None:
            log.warning("The Franka has sent no pose yet: there is nothing to hold.")
            return
        self._publish_target(pose.xyz, pose.rot)

    def close(self) -> None:
        """Hold the current pose (the impedance controller keeps it) and release the ROS entities."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            self._release()

    # ---- helpers ----------------------------------------------------------------------------------
    def _missing(self) -> list[str]:
        missing = []
        if self.node.count_subscribers(self.f.command_topic) == 0:
            missing.append(f"no controller subscribes to {self.f.command_topic}")
        with self._lock:
            pose, width = self._pose, self._width
        if pose is None:
            missing.append(f"no pose on {self.f.pose_topic}")
        if width is None:
            missing.append(f"no gripper state on {self.gripper_topic}")
        missing += [f"no gripper action server {self.f.gripper_namespace.rstrip('/')}/{name}"
                    for name, client in self._actions.items() if not client.server_is_ready()]
        return missing

    def _wait_for_driver(self, timeout_s: float) -> None:
        deadline = self._clock() + timeout_s
        missing = self._missing()
        while missing and self._clock() < deadline:
            with self._new_pose:
                self._new_pose.wait(min(0.05, max(0.0, deadline - self._clock())))
            missing = self._missing()
        if missing:
            raise RuntimeError(
                f"The Franka driver did not come up within {timeout_s:g} s ({', '.join(missing)}); start it with "
                f"`{DRIVER_COMMAND}` and a Cartesian controller taking geometry_msgs/PoseStamped targets on "
                f"{self.f.command_topic} (robot.franka.command_topic), then run again."
            )

    def _fresh_pose(self) -> _Pose:
        with self._lock:
            pose = self._pose
        if pose is None:
            raise RuntimeError(f"The Franka has sent no pose on {self.f.pose_topic}; check that franka_ros2 runs.")
        age = self._clock() - pose.received_s
        if age > self.f.state_timeout_s:
            raise RuntimeError(
                f"The Franka pose on {self.f.pose_topic} is {age:.2f} s old (limit robot.franka.state_timeout_s = "
                f"{self.f.state_timeout_s:g} s); the driver or its state broadcaster stopped: check "
                f"`ros2 topic hz {self.f.pose_topic}` and restart it."
            )
        return pose

    def _publish_target(self, xyz: np.ndarray, rot: np.ndarray) -> None:
        msg = self.PoseStamped(header=self.Header(stamp=self.node.get_clock().now().to_msg(), frame_id=self.f.base_frame))
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in xyz)
        q = _rotation().from_matrix(rot).as_quat()  # x, y, z, w
        msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = (float(v) for v in q)
        self._publisher.publish(msg)

    def _move_to(self, xyz: np.ndarray, rot: np.ndarray, what: str) -> None:
        """Stream interpolated targets from the measured pose to (xyz, rot), then wait until the arm is there."""
        Rotation = _rotation()
        start = self._fresh_pose()
        delta = Rotation.from_matrix(start.rot.T @ rot).as_rotvec()
        distance, angle = float(np.linalg.norm(xyz - start.xyz)), float(np.linalg.norm(delta))
        steps = max(1, math.ceil(max(distance / self.f.move_speed, angle / MOVE_ANGULAR_SPEED) * MOVE_RATE_HZ))
        for i in range(1, steps + 1):
            self._raise_if_stopped(what)
            s = i / steps
            self._publish_target(start.xyz + s * (xyz - start.xyz), start.rot @ Rotation.from_rotvec(s * delta).as_matrix())
            self._sleep(1.0 / MOVE_RATE_HZ)
        deadline = self._clock() + SETTLE_TIMEOUT_S
        while True:
            self._raise_if_stopped(what)
            pose = self._fresh_pose()
            error_m = float(np.linalg.norm(pose.xyz - xyz))
            error_rad = float(Rotation.from_matrix(pose.rot.T @ rot).magnitude())
            if error_m <= REACH_TOLERANCE_M and error_rad <= REACH_TOLERANCE_RAD:
                return
            if self._clock() >= deadline:
                raise RuntimeError(
                    f"The Franka did not reach its {what} pose within {SETTLE_TIMEOUT_S:g} s of the last target "
                    f"({error_m * 100:.1f} cm and {math.degrees(error_rad):.0f} deg away); check that the controller on "
                    f"{self.f.command_topic} is active and that nothing blocks the arm."
                )
            with self._new_pose:
                self._new_pose.wait(0.05)

    def _raise_if_stopped(self, what: str) -> None:
        if self._halted:  # stop() from another thread (an emergency stop) ends the move: no further target
            raise RuntimeError(f"The Franka was stopped during its {what} move.")

    def _gripper_goals(self, gripper_open: bool):
        if gripper_open:
            return "move", self.Move.Goal(width=float(self.f.gripper_max_width), speed=float(self.f.gripper_speed))
        eps = float(self.f.grasp_epsilon)
        return "grasp", self.Grasp.Goal(width=0.0, epsilon=self.GraspEpsilon(inner=eps, outer=eps),
                                        speed=float(self.f.gripper_speed), force=float(self.f.grasp_force))

    def _send_gripper(self, gripper_open: bool) -> None:
        """During the control loop: send the goal and go on (a grasp takes longer than a control period)."""
        name, goal = self._gripper_goals(gripper_open)
        self._actions[name].send_goal_async(goal)
        self._gripper_open = gripper_open

    def _gripper_goal(self, name: str, goal) -> None:
        """Send a gripper goal and wait (at most robot.franka.gripper_timeout_s) for it to succeed."""
        timeout = self.f.gripper_timeout_s
        action = f"{self.f.gripper_namespace.rstrip('/')}/{name}"
        deadline = self._clock() + timeout
        sent = self._actions[name].send_goal_async(goal)
        if not wait_future(sent, timeout) or not sent.result().accepted:
            raise RuntimeError(f"The Franka gripper did not accept the {action} goal within {timeout:g} s; check that "
                               f"franka_gripper runs (`ros2 action list` shows {action}).")
        outcome = sent.result().get_result_async()
        if not wait_future(outcome, max(0.0, deadline - self._clock())):
            raise RuntimeError(f"The Franka gripper did not finish {action} within {timeout:g} s "
                               "(robot.franka.gripper_timeout_s); check the gripper and its fingers.")
        response = outcome.result()
        if response.status != GOAL_SUCCEEDED or not response.result.success:
            raise RuntimeError(f"The Franka gripper's {action} failed ({response.result.error or f'status {response.status}'}); "
                               "home it (`ros2 action send_goal " + self.f.gripper_namespace.rstrip("/") +
                               "/homing franka_msgs/action/Homing {}`) and check its fingers.")

    def _release(self) -> None:
        releases = [client.destroy for client in self._actions.values()]
        releases += [lambda sub=sub: self.node.destroy_subscription(sub) for sub in self._subscriptions]
        releases.append(lambda: self.node.destroy_publisher(self._publisher))
        for release in releases:
            try:
                release()
            except Exception as err:  # noqa: BLE001 - ROS may already be down; release the rest
                log.debug("Releasing a Franka ROS entity failed: %s", err)
