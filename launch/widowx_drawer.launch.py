"""DSRL on a real WidowX 250 6DOF, drawer task (configs/widowx_drawer.yaml): driver, cameras, dsrl_real node.

    ros2 launch dsrl_real widowx_drawer.launch.py                       # train, reward backend from the config
    ros2 launch dsrl_real widowx_drawer.launch.py reward_backend:=robometer resume:=true

Every argument of widowx.launch.py and dsrl_node.launch.py applies (`--show-args` lists them).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("dsrl_real")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "configs", "widowx_drawer.yaml"]),
                              description="config name in configs/ or a YAML path"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "widowx.launch.py"])),
                                 launch_arguments={"config": LaunchConfiguration("config")}.items()),
    ])
