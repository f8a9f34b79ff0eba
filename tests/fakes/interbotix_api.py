"""The signatures of the real Interbotix ROS 2 Python API (the "G3" humble 2024 generation), in one place.

The fake in `interbotix.py` validates every call against these stubs, so code that calls a
method or passes an argument the real API lacks fails in the tests instead of on the robot.
Bodies are empty: only the names, parameters, defaults and annotations matter. Each class and
function names the upstream file it was copied from (research notes: /tmp/research/apis.md).

    ARM      = interbotix_ros_toolboxes/interbotix_xs_toolbox/interbotix_xs_modules/
               interbotix_xs_modules/xs_robot/arm.py      (G3 copy: ZhantaoSong fork @ 20afdb2d)
    GRIPPER  = .../xs_robot/gripper.py                     (G3 copy: BillyLiu312 fork @ 10a0dfb2)
    CORE     = .../xs_robot/core.py                        (G3 copy: NTU-RLL-aloha @ 37d14072)
    ROBOT    = interbotix_ros_toolboxes/interbotix_common_toolbox/interbotix_common_modules/
               interbotix_common_modules/common_robot/robot.py   (Interbotix @ 11e0ada8)
"""

import enum
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from fakes.api_check import RealAPI


class LoggingSeverity(enum.IntEnum):
    """Stand-in for `rclpy.logging.LoggingSeverity` (same values)."""

    UNSET = 0
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50


class InterbotixRobotNode:
    """Stand-in for ROBOT `InterbotixRobotNode(rclpy.node.Node)`."""

    def __init__(self, node_name: str = "interbotix_robot_manipulation", namespace: Optional[str] = None,
                 *args, **kwargs) -> None: ...


class InterbotixException(Exception):
    """interbotix_common_modules/common_robot/exceptions.py"""


# ---- ARM: interbotix_xs_modules.xs_robot.arm --------------------------------------------------
class InterbotixManipulatorXS:
    """ARM `InterbotixManipulatorXS`. G3 has no start()/shutdown(): use robot_startup()/robot_shutdown()."""

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
        logging_level: LoggingSeverity = LoggingSeverity.INFO,
        node_name: str = "robot_manipulation",
        node: InterbotixRobotNode = None,
        iterative_update_fk: bool = True,
        args=None,
    ) -> None: ...

    def get_node(self) -> InterbotixRobotNode: ...


class InterbotixArmXSInterface:
    """ARM `InterbotixArmXSInterface`."""

    def __init__(self, core: "InterbotixRobotXSCore", robot_model: str, group_name: str,
                 moving_time: float = 2.0, accel_time: float = 0.3, iterative_update_fk: bool = True) -> None: ...

    def set_trajectory_time(self, moving_time: float = None, accel_time: float = None) -> None: ...

    def set_joint_positions(self, joint_positions: List[float], moving_time: float = None,
                            accel_time: float = None, blocking: bool = True) -> bool: ...

    def go_to_home_pose(self, moving_time: float = None, accel_time: float = None, blocking: bool = True) -> None: ...

    def go_to_sleep_pose(self, moving_time: float = None, accel_time: float = None, blocking: bool = True) -> None: ...

    def set_single_joint_position(self, joint_name: str, position: float, moving_time: float = None,
                                  accel_time: float = None, blocking: bool = True) -> bool: ...

    def set_ee_pose_matrix(self, T_sd: np.ndarray, custom_guess: List[float] = None, execute: bool = True,
                           moving_time: float = None, accel_time: float = None, blocking: bool = True
                           ) -> Tuple[Union[np.ndarray, Any, List[float]], bool]: ...

    def set_ee_pose_components(self, x: float = 0, y: float = 0, z: float = 0, roll: float = 0, pitch: float = 0,
                               yaw: float = None, custom_guess: List[float] = None, execute: bool = True,
                               moving_time: float = None, accel_time: float = None, blocking: bool = True
                               ) -> Tuple[Union[np.ndarray, Any, List[float]], bool]: ...

    # `blocking` is in the G3 fork read; upstream G2 ends at wp_period. Accepted, but not relied on.
    def set_ee_cartesian_trajectory(self, x: float = 0, y: float = 0, z: float = 0, roll: float = 0,
                                    pitch: float = 0, yaw: float = 0, moving_time: float = None,
                                    wp_moving_time: float = 0.2, wp_accel_time: float = 0.1,
                                    wp_period: float = 0.05, blocking: bool = True) -> bool: ...

    def get_joint_commands(self) -> List[float]: ...

    def get_single_joint_command(self, joint_name: str) -> float: ...

    def get_ee_pose_command(self) -> np.ndarray: ...

    def get_ee_pose(self) -> np.ndarray: ...

    def capture_joint_positions(self) -> None: ...

    # G3 only:
    def get_joint_positions(self) -> List[float]: ...

    def get_joint_velocities(self) -> List[float]: ...

    def get_joint_efforts(self) -> List[float]: ...

    def get_number_of_joints(self) -> int: ...


# ---- GRIPPER: interbotix_xs_modules.xs_robot.gripper ------------------------------------------
class InterbotixGripperXSInterface:
    """GRIPPER `InterbotixGripperXSInterface`. G2/G3: release() opens (+effort), grasp() closes (-effort)."""

    def __init__(self, core: "InterbotixRobotXSCore", gripper_name: str, gripper_pressure: float = 0.5,
                 gripper_pressure_lower_limit: int = 150, gripper_pressure_upper_limit: int = 350) -> None: ...

    def gripper_controller(self, effort: float, delay: float) -> None: ...

    def set_pressure(self, pressure: float) -> None: ...

    def release(self, delay: float = 1.0) -> None: ...

    def grasp(self, delay: float = 1.0) -> None: ...

    # G3 only:
    def get_gripper_position(self) -> float: ...

    def get_gripper_velocity(self) -> float: ...

    def get_gripper_effort(self) -> float: ...

    def get_finger_position(self) -> float: ...


# ---- CORE: interbotix_xs_modules.xs_robot.core -----------------------------------------------
class InterbotixRobotXSCore:
    """CORE `InterbotixRobotXSCore` (G3: not a Node). Attributes: joint_states, js_mutex, js_index_map, ns."""

    def __init__(self, robot_model: str, robot_name: Optional[str] = None, topic_joint_states: str = "joint_states",
                 logging_level: LoggingSeverity = LoggingSeverity.INFO,
                 node_name: str = "interbotix_robot_manipulation", node: Optional[InterbotixRobotNode] = None,
                 args=None) -> None: ...

    def get_node(self) -> InterbotixRobotNode: ...

    def robot_set_operating_modes(self, cmd_type: str, name: str, mode: str, profile_type: str = "velocity",
                                  profile_velocity: int = 0, profile_acceleration: int = 0) -> None: ...

    def robot_set_motor_pid_gains(self, cmd_type: str, name: str, kp_pos: int, ki_pos: int = 0, kd_pos: int = 0,
                                  k1: int = 0, k2: int = 0, kp_vel: int = 100, ki_vel: int = 1920) -> None: ...

    def robot_set_motor_registers(self, cmd_type: str, name: str, reg: str, value: int) -> None: ...

    def robot_get_motor_registers(self, cmd_type: str, name: str, reg: str) -> List[int]: ...

    def robot_get_robot_info(self, cmd_type: str, name: str) -> Any: ...

    def robot_torque_enable(self, cmd_type: str, name: str, enable: bool) -> None: ...

    def robot_reboot_motors(self, cmd_type: str, name: str, enable: bool, smart_reboot: bool = False): ...

    def robot_write_commands(self, group_name: str, commands: List[float]) -> None: ...

    def robot_write_joint_command(self, joint_name: str, command: float) -> None: ...

    def robot_write_trajectory(self, cmd_type: str, name: str, traj_type: str,
                               raw_traj: List[Dict[float, List[float]]]) -> None: ...

    def robot_get_joint_states(self) -> Any: ...

    def robot_get_single_joint_state(self, name: str) -> Dict[str, List[float]]: ...


# ---- ROBOT: interbotix_common_modules.common_robot.robot --------------------------------------
def robot_startup(node: Optional[InterbotixRobotNode] = None, node_name: str = "interbotix_robot_manipulation",
                  namespace: Optional[str] = None) -> None:
    """ROBOT: spins the (global) node in a daemon thread; raises InterbotixException if already up."""


def robot_shutdown(node: Optional[InterbotixRobotNode] = None) -> None:
    """ROBOT: destroy_node(), rclpy.shutdown(), join the spin thread."""


def create_interbotix_global_node(node_name: str = "interbotix_robot_manipulation", namespace: str = None,
                                  *args, **kwargs) -> InterbotixRobotNode:
    """ROBOT: raises InterbotixException if a global node already exists."""


def get_interbotix_global_node() -> InterbotixRobotNode:
    """ROBOT"""


def interbotix_is_up() -> bool:
    """ROBOT"""


# ---- lookup and checking ----------------------------------------------------------------------
# How the fake names the objects a call goes to, e.g. 'arm.set_joint_positions' or 'robot_startup'.
OWNERS = {
    "bot": InterbotixManipulatorXS,
    "arm": InterbotixArmXSInterface,
    "gripper": InterbotixGripperXSInterface,
    "core": InterbotixRobotXSCore,
}
FUNCTIONS = {f.__name__: f for f in (robot_startup, robot_shutdown, create_interbotix_global_node,
                                     get_interbotix_global_node, interbotix_is_up)}


class InterbotixAPIMismatch(TypeError):
    """A call that the real Interbotix API would reject (unknown method, argument or argument kind)."""


REAL = RealAPI("Interbotix", InterbotixAPIMismatch, FUNCTIONS, OWNERS)
spec_for, check_call = REAL.spec_for, REAL.check_call
