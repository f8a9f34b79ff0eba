"""The dsrl_real node and, optionally, RealSense camera nodes: the part every robot's launch file includes.

    ros2 launch dsrl_real dsrl_node.launch.py config:=/path/to/task.yaml mode:=eval    # robot driver already running

`widowx.launch.py` and `franka.launch.py` include this file and pass it `config`; every other argument
declared here is an argument of theirs too (`ros2 launch ... --show-args` lists them), because launch
configurations set on the command line reach included files (an include does not scope them).

`config` is required, yet declared with the default "": ROS 2's launch refuses an include that does not
pass a declared argument without default (launch/actions/include_launch_description.py, even when the
value was given on the command line), and says so in words about includes. `require` gives one
sentence with an example instead.
"""

import shlex

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

BOOL = ["true", "false"]
EXAMPLE = "ros2 launch dsrl_real dsrl_node.launch.py config:=widowx_monkey"


def require(name, what, example):
    """An action that stops the launch with one sentence when the launch argument `name` is empty."""

    def check(context):
        if not LaunchConfiguration(name).perform(context):
            raise ValueError(f"The launch argument '{name}' is missing: give {what}, e.g. `{example}`.")

    return OpaqueFunction(function=check)


def dsrl_node(context):
    """Our node with typed parameters (plain Python values keep their type in launch_ros)."""

    def arg(name):
        return LaunchConfiguration(name).perform(context)

    parameters = {
        "config": arg("config"),
        "mode": arg("mode"),
        "reward_backend": arg("reward_backend"),
        "resume": arg("resume") == "true",
        "use_sim": arg("use_sim") == "true",
        "learner_address": arg("learner_address"),
    }
    overrides = shlex.split(arg("overrides"))
    if overrides:  # a ROS 2 parameter cannot be an empty list; the node's default is []
        parameters["overrides"] = overrides
    return [Node(
        package="dsrl_real",
        executable="dsrl_real_node",
        # No name=: launch_ros would pass the global remap `__node:=...`, which rcl applies to every node of the
        # process, the Interbotix node included (rcl/src/rcl/remap.c); the node names itself "dsrl_real".
        parameters=[parameters],
        output="screen",
        emulate_tty=True,
        # Ctrl-C: the node stops the arm, writes a checkpoint and seals the recording, then the arm goes to its
        # sleep pose; ros2 launch's 5 s default before SIGTERM/SIGKILL is too short for that.
        sigterm_timeout="60",
        sigkill_timeout="30",
        prefix=arg("node_prefix") or None,
        condition=IfCondition(LaunchConfiguration("start_node")),
    )]


def realsense_cameras(context):
    """One realsense2_camera node per NAME=SERIAL pair, publishing /NAME/color/image_raw (any realsense-ros 4.x)."""
    includes = []
    for pair in filter(None, (p.strip() for p in LaunchConfiguration("camera_serials").perform(context).split(","))):
        name, _, serial = (part.strip() for part in pair.partition("="))
        if not (name and serial):
            raise ValueError(f"camera_serials entry {pair!r} is not NAME=SERIAL; write e.g. "
                             "camera_serials:=third_person=123456789012,wrist=987654321098")
        includes.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch",
                                                                "rs_launch.py"])),
            launch_arguments={
                "camera_namespace": "/",  # 4.54+ would add /camera in front by default
                "camera_name": name,
                "serial_no": "_" + serial,  # the leading underscore keeps a numeric serial a string
                "enable_depth": "false",
            }.items(),
        ))
    return includes


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value="", description="required: config name in configs/ or a YAML path"),
        DeclareLaunchArgument("mode", default_value="train", choices=["train", "eval", "human_oracle"],
                              description="train DSRL, evaluate a checkpoint, or run the human-oracle baseline"),
        DeclareLaunchArgument("reward_backend", default_value="",
                              description="roboreward | robometer | human | sim_truth; empty: the config's reward.backend"),
        DeclareLaunchArgument("resume", default_value="false", choices=BOOL,
                              description="continue the run in train.out_dir from its last checkpoint"),
        DeclareLaunchArgument("use_sim", default_value="false", choices=BOOL,
                              description="no hardware: the node runs the task on its simulated tabletop, the driver its "
                                          "simulator (xs_sdk_sim / fake hardware)"),
        DeclareLaunchArgument("learner_address", default_value="",
                              description="empty: the config's learner (in this process by default); 'local': the learner "
                                          "as a Ray actor here; else the Ray cluster running it, e.g. 'auto' or "
                                          "'ray://gpu-box:10001' (pip install -e \".[ray]\")"),
        DeclareLaunchArgument("overrides", default_value="",
                              description="space-separated dotted config overrides, e.g. 'train.out_dir=runs/a run.seed=1'"),
        DeclareLaunchArgument("camera_serials", default_value="",
                              description="start realsense2_camera for NAME=SERIAL,...: topics /NAME/color/image_raw (cameras of kind ros_topic)"),
        DeclareLaunchArgument("start_node", default_value="true", choices=BOOL,
                              description="false: start only the drivers and run the node with `ros2 run`"),
        DeclareLaunchArgument("node_prefix", default_value="",
                              description="command prefix for the node, e.g. 'xterm -e' to give it a keyboard"),
        require("config", "a config name in configs/ or a YAML path", EXAMPLE),
        OpaqueFunction(function=realsense_cameras),
        OpaqueFunction(function=dsrl_node),
    ])
