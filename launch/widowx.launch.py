"""DSRL on a real WidowX 250 6DOF: the Interbotix driver, then the dsrl_real node (see dsrl_node.launch.py).

    ros2 launch dsrl_real widowx.launch.py config:=/path/to/my_task.yaml mode:=train reward_backend:=roboreward
    ros2 launch dsrl_real widowx.launch.py --show-args      # every argument with its default

`widowx_monkey.launch.py` and `widowx_drawer.launch.py` include this file with their task's config.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot_model", default_value="wx250s", description="Interbotix arm model"),
        # first: it declares use_sim and the node's arguments, which the driver include below reads
        IncludeLaunchDescription(PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("dsrl_real"), "launch", "dsrl_node.launch.py"]))),
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
