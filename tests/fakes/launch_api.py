"""The signatures of the ROS 2 launch API our launch files use, and what the launch files they include declare.

The fake in `launch_fake.py` validates every constructor call against these stubs, so a launch file
that passes an argument the real API lacks (say `Node(executeable=...)`) fails in the tests instead
of on the robot. Bodies are empty: only names, parameters and defaults matter. Anything not stubbed
here is absent from the fake, so using it fails too (add its real signature here first).

Sources (ROS 2 Humble generation; Jazzy keeps these signatures and only adds parameters):

    LAUNCH     = ros2/launch  launch/launch/...
                 actions/declare_launch_argument.py, actions/include_launch_description.py (a3102a89),
                 actions/opaque_function.py (e35fae00), actions/execute_process.py (986ea832),
                 actions/execute_local.py (7028ad62), substitutions/launch_configuration.py (ab856cff),
                 substitutions/path_join_substitution.py (2f5316a7), conditions/if_condition.py,
                 launch_description_sources/python_launch_description_source.py
    LAUNCH_ROS = ros2/launch_ros  launch_ros/launch_ros/actions/node.py (eb66680a),
                 substitutions/find_package.py (c176ada8), utilities/normalize_parameters.py (25a4a397),
                 utilities/evaluate_parameters.py (c176ada8)
    AMENT      = ament/ament_index  ament_index_python/ament_index_python/packages.py (057e8846)
    ROS2LAUNCH = ros2/launch_ros  ros2launch/ros2launch/api/api.py (launch_a_launch_file)

The behaviour the fake must reproduce is at the end of this file ("what the real launch enforces"),
read in ros2/launch and ros2/launch_ros on their humble and jazzy branches (identical there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Text

from fakes.api_check import RealAPI

# Default of ExecuteLocal's sigterm/sigkill timeouts: LaunchConfiguration('sigterm_timeout', default=5).
_TIMEOUT_DEFAULT = "<LaunchConfiguration('sig*_timeout', default=5)>"
_OUTPUT_FORMAT = "[{this.process_description.final_name}] {line}"


# ---- launch ------------------------------------------------------------------------------------
class LaunchDescription:
    """LAUNCH launch_description.py `LaunchDescription(LaunchDescriptionEntity)`."""

    def __init__(self, initial_entities: Optional[Iterable[Any]] = None, *,
                 deprecated_reason: Optional[Text] = None) -> None: ...

    def add_action(self, action: Any) -> None: ...

    def add_entity(self, entity: Any) -> None: ...


class LaunchContext:
    """LAUNCH launch_context.py: what an OpaqueFunction receives. `launch_configurations` is a property (dict)."""

    def perform_substitution(self, substitution: Any) -> Text: ...


# ---- launch.actions: every Action also takes `condition` (Action.__init__(*, condition=None)) -----
class DeclareLaunchArgument:
    """LAUNCH actions/declare_launch_argument.py. `choices` must be non-empty and hold a plain default."""

    def __init__(self, name: Text, *, default_value: Any = None, description: Optional[Text] = None,
                 choices: Optional[List[Text]] = None, condition: Any = None) -> None: ...


class IncludeLaunchDescription:
    """LAUNCH actions/include_launch_description.py. Arguments become launch configurations (not scoped)."""

    def __init__(self, launch_description_source: Any, *, launch_arguments: Optional[Iterable[Any]] = None,
                 condition: Any = None) -> None: ...


class OpaqueFunction:
    """LAUNCH actions/opaque_function.py: calls function(context, *args, **kwargs) -> list of entities or None."""

    def __init__(self, *, function: Callable, args: Optional[Iterable[Any]] = None,
                 kwargs: Optional[Dict[Text, Any]] = None, condition: Any = None) -> None: ...


class LogInfo:
    """LAUNCH actions/log_info.py."""

    def __init__(self, *, msg: Any, condition: Any = None) -> None: ...


# ---- launch.substitutions ------------------------------------------------------------------------
class LaunchConfiguration:
    """LAUNCH substitutions/launch_configuration.py. perform() raises SubstitutionFailure if unset and no default."""

    def __init__(self, variable_name: Any, *, default: Any = None) -> None: ...

    def perform(self, context: LaunchContext) -> Text: ...


class PathJoinSubstitution:
    """LAUNCH substitutions/path_join_substitution.py: os.path.join of the performed parts."""

    def __init__(self, substitutions: Iterable[Any]) -> None: ...

    def perform(self, context: LaunchContext) -> Text: ...


class TextSubstitution:
    """LAUNCH substitutions/text_substitution.py."""

    def __init__(self, *, text: Text) -> None: ...

    def perform(self, context: LaunchContext) -> Text: ...


# ---- launch.conditions -----------------------------------------------------------------------------
class IfCondition:
    """LAUNCH conditions/if_condition.py; the expression must evaluate to true|false|1|0 (any case)."""

    def __init__(self, predicate_expression: Any) -> None: ...

    def evaluate(self, context: LaunchContext) -> bool: ...


class UnlessCondition:
    """LAUNCH conditions/unless_condition.py."""

    def __init__(self, predicate_expression: Any) -> None: ...

    def evaluate(self, context: LaunchContext) -> bool: ...


# ---- launch.launch_description_sources ----------------------------------------------------------
class PythonLaunchDescriptionSource:
    """LAUNCH launch_description_sources/python_launch_description_source.py."""

    def __init__(self, launch_file_path: Any) -> None: ...


# ---- launch_ros ----------------------------------------------------------------------------------
class Node:
    """LAUNCH_ROS actions/node.py `Node(ExecuteProcess)`, with the keyword arguments it forwards flattened in:
    ExecuteProcess (prefix, cwd, env, additional_env; its `name` is Node's `exec_name`), ExecuteLocal
    (shell ... respawn_delay; `respawn_max_retries` is Jazzy-only and left out) and Action (condition).
    `ros_arguments` is left out as well: our launch files do not need it."""

    def __init__(self, *, executable: Any, package: Any = None, name: Any = None, namespace: Any = None,
                 exec_name: Any = None, parameters: Optional[List[Any]] = None, remappings: Optional[List[Any]] = None,
                 arguments: Optional[Iterable[Any]] = None, prefix: Any = None, cwd: Any = None, env: Any = None,
                 additional_env: Any = None, shell: bool = False, sigterm_timeout: Any = _TIMEOUT_DEFAULT,
                 sigkill_timeout: Any = _TIMEOUT_DEFAULT, emulate_tty: bool = False, output: Any = "log",
                 output_format: Text = _OUTPUT_FORMAT, cached_output: bool = False, log_cmd: bool = False,
                 on_exit: Any = None, respawn: Any = False, respawn_delay: Optional[float] = None,
                 condition: Any = None) -> None: ...


class FindPackageShare:
    """LAUNCH_ROS substitutions/find_package.py: get_package_share_directory(package) when performed."""

    def __init__(self, package: Any) -> None: ...

    def perform(self, context: LaunchContext) -> Text: ...


# ---- ament_index_python.packages -------------------------------------------------------------------
def get_package_share_directory(package_name, print_warning=True):
    """AMENT: <prefix>/share/<name> of the first AMENT_PREFIX_PATH entry holding
    share/ament_index/resource_index/packages/<name>; PackageNotFoundError(KeyError) otherwise."""


def get_package_prefix(package_name):
    """AMENT"""


class PackageNotFoundError(KeyError):
    """AMENT"""


# ---- what the launch files we include declare ---------------------------------------------------
@dataclass(frozen=True)
class ExternalLaunchFile:
    """One generation of an upstream launch file: its declared arguments (name -> default, None = required)."""

    package: str
    path: str  # relative to the package's share directory
    generation: str
    arguments: Dict[str, Optional[str]]
    choices: Dict[str, tuple] = field(default_factory=dict)
    source: str = ""
    descriptions: Dict[str, str] = field(default_factory=dict)  # of the required arguments, for launch's message

    @property
    def required(self) -> set[str]:
        return {name for name, default in self.arguments.items() if default is None}


_BOOL = ("true", "false")
XSARM_MODELS = ("px100", "px150", "rx150", "rx200", "wx200", "wx250", "wx250s", "vx250", "vx300", "vx300s",
                "mobile_px100", "mobile_wx200", "mobile_wx250s", "aloha_wx250s", "aloha_vx300s")

EXTERNAL_LAUNCH_FILES = (
    ExternalLaunchFile(
        package="interbotix_xsarm_control", path="launch/xsarm_control.launch.py", generation="humble",
        arguments={
            "robot_model": None, "robot_name": "<robot_model>", "use_rviz": "true", "motor_configs": "<config/MODEL.yaml>",
            "mode_configs": "<config/modes.yaml>", "load_configs": "true", "xs_driver_logging_level": "INFO",
            "use_sim": "false", "use_sim_time": "false",
            # declare_interbotix_xsarm_robot_description_launch_arguments():
            "base_link_frame": "base_link", "use_gripper": "true", "show_ar_tag": "false", "show_gripper_bar": "true",
            "show_gripper_fingers": "true", "use_world_frame": "true", "external_urdf_loc": "",
            "hardware_type": "actual", "robot_description": "<xacro>",
        },
        choices={"robot_model": XSARM_MODELS, "use_rviz": _BOOL, "load_configs": _BOOL, "use_sim": _BOOL,
                 "use_sim_time": _BOOL, "xs_driver_logging_level": ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")},
        descriptions={"robot_model": "model type of the Interbotix Arm such as `wx200` or `rx150`."},
        source="Interbotix/interbotix_ros_manipulators interbotix_ros_xsarms/interbotix_xsarm_control/launch/"
               "xsarm_control.launch.py (1ce843a1); Interbotix/interbotix_ros_toolboxes xs_launch/xs_launch.py (101ef9ae)",
    ),
    ExternalLaunchFile(
        # realsense-ros 4.5x: every argument has a default; the node publishes /<camera_namespace>/<camera_name>/...
        package="realsense2_camera", path="launch/rs_launch.py", generation="4.5x",
        arguments={name: default for name, default in (
            ("camera_name", "camera"), ("camera_namespace", "camera"), ("serial_no", "''"), ("usb_port_id", "''"),
            ("device_type", "''"), ("config_file", "''"), ("json_file_path", "''"), ("initial_reset", "false"),
            ("log_level", "info"), ("output", "screen"), ("enable_color", "true"), ("rgb_camera.color_profile", "0,0,0"),
            ("enable_depth", "true"), ("enable_infra1", "false"), ("enable_infra2", "false"),
            ("depth_module.depth_profile", "0,0,0"), ("enable_sync", "false"), ("align_depth.enable", "false"),
            ("pointcloud.enable", "false"), ("publish_tf", "true"), ("wait_for_device_timeout", "-1."),
            ("reconnect_timeout", "6."),
        )},
        source="realsenseai/realsense-ros realsense2_camera/launch/rs_launch.py (1d7d78c5), a subset of its "
               "configurable_parameters",
    ),
    ExternalLaunchFile(
        package="franka_bringup", path="launch/franka.launch.py", generation="0.1.x (2023-24, arm_id)",
        arguments={"robot_ip": None, "arm_id": None, "use_rviz": "false", "use_fake_hardware": "false",
                   "fake_sensor_commands": "false", "load_gripper": "true"},
        descriptions={"robot_ip": "Hostname or IP address of the robot."},
        source="franka_ros2 0.1.x franka_bringup/launch/franka.launch.py (2024 copy in a public fork)",
    ),
    ExternalLaunchFile(
        package="franka_bringup", path="launch/franka.launch.py", generation="1.x-2.x (2025+, robot_type; humble and jazzy branches)",
        arguments={"robot_type": "", "arm_prefix": "", "namespace": "", "robot_ip": "172.16.0.3",
                   "load_gripper": "false", "use_fake_hardware": "false", "fake_sensor_commands": "false",
                   "joint_state_rate": "30", "load_franka_robot_state_broadcaster": "true",
                   "controllers_yaml": "<franka_bringup/config/controllers.yaml>"},
        source="frankaemika/franka_ros2 (jazzy) franka_bringup/doc/index.rst (66727a26), 'franka.launch.py launch arguments'",
    ),
)

# Executables of the packages our launch files start nodes from (`ros2 pkg executables PACKAGE`).
EXTERNAL_EXECUTABLES = {
    "controller_manager": {"spawner", "unspawner", "ros2_control_node"},  # Humble+ (spawner.py was Foxy)
    "realsense2_camera": {"realsense2_camera_node"},
}


class LaunchAPIMismatch(TypeError):
    """A call, or an include, that the real launch API (or the included launch file) would reject."""


REAL = RealAPI("launch", LaunchAPIMismatch, plain_numbers=False, list_unknown_keywords=True)
check_call = REAL.check_call


# ---- what the real launch enforces ---------------------------------------------------------------------------
# LAUNCH actions/include_launch_description.py IncludeLaunchDescription.execute(): before it sets the include's
# launch_arguments as launch configurations, it lists the arguments the included description declares
# (LaunchDescription.get_launch_arguments_with_include_launch_description_actions(), launch_description.py):
#   * walking entities in order and into sub-entities: an IncludeLaunchDescription's sub-entity is its file's
#     description loaded WITHOUT a context (launch_description_source.py try_get_launch_description_without_context;
#     a path that cannot be resolved so is skipped); an OpaqueFunction, a Node, a LogInfo have none, so arguments
#     declared by what an OpaqueFunction returns are never seen;
#   * a name already listed is skipped (the first declaration wins);
#   * an argument is "conditionally included" if it has a condition or sits under an action that has one;
#   * each argument carries the nested includes it was found under (None at the top level).  The list of nested
#     includes is shared between siblings and only appended to, exactly as upstream does.
# Every listed argument that is not conditionally included and has no default must be named in the include's
# launch_arguments; for a nested argument, the names given by each nested include on its path (performed without a
# context) count too.  The list of names is extended in place, so names added for one argument count for the
# next ones.  Launch configurations set on the command line do NOT count: only the include's own arguments.
INCLUDE_MISSING_ARGUMENT = "Included launch description missing required argument '{}' (description: '{}'), given: [{}]"

# ROS2LAUNCH api.py launch_a_launch_file(): `ros2 launch PKG FILE a:=1` includes FILE through an
# IncludeLaunchDescription whose launch_arguments are the command-line arguments, so the check above runs on the
# top-level file with given = the command-line names.


def declared_description(description: Optional[str], choices: Optional[List[str]]) -> str:
    """LAUNCH actions/declare_launch_argument.py: DeclareLaunchArgument.description as the include message shows it."""
    if description is None:
        return "no description given" if choices is None else "One of: " + str(choices)
    if choices is None:
        return description
    return (description if description.endswith(".") else description + ".") + " Valid choices are: " + str(choices)


# LAUNCH_ROS actions/node.py Node: the command line is [executable, *arguments, '--ros-args'] followed by
# '-r __node:=NAME' only if `name` was given (a GLOBAL remap: rcl applies it to every node of the process, see
# ros_api.NODE_REMAP_RULES), '-r __ns:=NS' if a namespace was given, then one '--params-file FILE' per dict of
# parameters (_create_params_file_from_dict: yaml.dump({KEY: {'ros__parameters': params}}), KEY being '/**'
# unless both name and namespace are known, lists evaluated to tuples, so dumped as '!!python/tuple').
def node_ros_arguments(name: Optional[str], namespace: Optional[str], params_files: List[str]) -> List[str]:
    arguments = ["--ros-args"]
    if name is not None:
        arguments += ["-r", f"__node:={name}"]
    if namespace is not None:
        arguments += ["-r", f"__ns:={namespace}"]
    for path in params_files:
        arguments += ["--params-file", path]
    return arguments


def params_file_key(name: Optional[str], namespace: Optional[str]) -> str:
    """LAUNCH_ROS actions/node.py _create_params_file_from_dict / is_node_name_fully_specified."""
    if name is None or namespace is None:
        return "/**"
    return namespace.rstrip("/") + "/" + name
