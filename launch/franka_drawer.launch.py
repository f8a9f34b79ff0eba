"""DSRL on a Franka, drawer task (configs/franka_drawer.yaml): franka_ros2 bringup, controller, dsrl_real node.

    ros2 launch dsrl_real franka_drawer.launch.py robot_ip:=172.16.0.2
    ros2 launch dsrl_real franka_drawer.launch.py robot_ip:=172.16.0.2 reward_backend:=robometer resume:=true

Every argument of franka.launch.py and dsrl_node.launch.py applies (`--show-args` lists them).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("dsrl_real")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "configs", "franka_drawer.yaml"]),
                              description="config name in configs/ or a YAML path"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "franka.launch.py"]))),
    ])
