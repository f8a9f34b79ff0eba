"""DSRL on a Franka, pick-and-place task (configs/franka_pick.yaml): franka_ros2 bringup, controller, dsrl_real node.

    ros2 launch dsrl_real franka_pick.launch.py robot_ip:=172.16.0.2
    ros2 launch dsrl_real franka_pick.launch.py robot_ip:=172.16.0.2 reward_backend:=robometer resume:=true

Every argument of franka.launch.py and dsrl_node.launch.py applies (`--show-args` lists them).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

EXAMPLE = "ros2 launch dsrl_real franka_pick.launch.py robot_ip:=172.16.0.2"


def require(name, what, example):
    """An action that stops the launch with one sentence when the launch argument `name` is empty."""

    def check(context):
        if not LaunchConfiguration(name).perform(context):
            raise ValueError(f"The launch argument '{name}' is missing: give {what}, e.g. `{example}`.")

    return OpaqueFunction(function=check)


def generate_launch_description():
    share = FindPackageShare("dsrl_real")
    return LaunchDescription([
        DeclareLaunchArgument("robot_ip", default_value="",
                              description="required: hostname or IP address of the arm's FCI (e.g. 172.16.0.2)"),
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "configs", "franka_pick.yaml"]),
                              description="config name in configs/ or a YAML path"),
        require("robot_ip", "the hostname or IP address of the arm's FCI", EXAMPLE),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "franka.launch.py"])),
            launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"), "config": LaunchConfiguration("config")}.items(),
        ),
    ])
