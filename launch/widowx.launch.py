"""DSRL on a real WidowX 250 6DOF: the Interbotix driver, then the dsrl_real node (see dsrl_node.launch.py).

    ros2 launch dsrl_real widowx.launch.py config:=/path/to/my_task.yaml mode:=train reward_backend:=roboreward
    ros2 launch dsrl_real widowx.launch.py --show-args      # every argument with its default

`widowx_monkey.launch.py` and `widowx_drawer.launch.py` include this file and pass it their task's config.
Each include passes every argument the included file needs (ROS 2's launch checks that, see
dsrl_node.launch.py); the node's other arguments (mode, use_sim, ...) reach it from the command line.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

EXAMPLE = "ros2 launch dsrl_real widowx.launch.py config:=widowx_monkey"


def require(name, what, example):
    """An action that stops the launch with one sentence when the launch argument `name` is empty."""

    def check(context):
        if not LaunchConfiguration(name).perform(context):
            raise ValueError(f"The launch argument '{name}' is missing: give {what}, e.g. `{example}`.")

    return OpaqueFunction(function=check)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value="", description="required: config name in configs/ or a YAML path"),
        DeclareLaunchArgument("robot_model", default_value="wx250s", description="Interbotix arm model"),
        require("config", "a config name in configs/ or a YAML path", EXAMPLE),
        # first: it declares use_sim and the node's arguments, which the driver include below reads
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("dsrl_real"), "launch",
                                                                "dsrl_node.launch.py"])),
            launch_arguments={"config": LaunchConfiguration("config")}.items(),
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("interbotix_xsarm_control"), "launch",
                                                                "xsarm_control.launch.py"])),
            launch_arguments={
                "robot_model": LaunchConfiguration("robot_model"),
                "use_rviz": "false",
                "use_sim": LaunchConfiguration("use_sim"),  # true: xs_sdk_sim instead of the real motors
            }.items(),
        ),
    ])
