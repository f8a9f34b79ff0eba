"""DSRL on a Franka (franka_ros2): the robot bringup, a Cartesian controller, then the dsrl_real node.

    ros2 launch dsrl_real franka.launch.py config:=/path/to/my_task.yaml robot_ip:=172.16.0.2
    ros2 launch dsrl_real franka.launch.py --show-args      # every argument with its default

`franka_bringup/launch/franka.launch.py` connects to the arm (FCI) and starts the gripper actions and
the robot state broadcaster; the controller named by `controller` (spawned with controller_manager's
spawner) must take geometry_msgs/PoseStamped targets on `/<controller>/equilibrium_pose`, the
config's robot.franka.command_topic. `franka_drawer.launch.py` and `franka_pick.launch.py` include
this file and pass it `robot_ip` and their task's config. Each include passes every argument the
included file needs (ROS 2's launch checks that, see dsrl_node.launch.py); the node's other
arguments (mode, use_sim, ...) reach it from the command line.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

BOOL = ["true", "false"]
EXAMPLE = "ros2 launch dsrl_real franka.launch.py robot_ip:=172.16.0.2 config:=franka_pick"


def require(name, what, example):
    """An action that stops the launch with one sentence when the launch argument `name` is empty."""

    def check(context):
        if not LaunchConfiguration(name).perform(context):
            raise ValueError(f"The launch argument '{name}' is missing: give {what}, e.g. `{example}`.")

    return OpaqueFunction(function=check)


def franka_driver(context):
    """franka_bringup's launch file; the arguments suit its 0.1.x (arm_id) and 1.x+ (robot_type) releases."""

    def arg(name):
        return LaunchConfiguration(name).perform(context)

    sim = arg("use_sim") == "true"
    arguments = {
        "robot_ip": arg("robot_ip"),
        "arm_id": arg("arm_id"),  # franka_ros2 0.1.x
        "robot_type": arg("arm_id"),  # franka_ros2 1.x and later
        "load_gripper": arg("load_gripper"),
        "use_fake_hardware": "true" if sim else "false",
        "use_rviz": "false",
        # fake hardware has no franka state to broadcast (0.1.x skips it by itself)
        "load_franka_robot_state_broadcaster": "false" if sim else "true",
    }
    if arg("controllers_yaml"):  # franka_ros2 2.x: a controllers file that also defines `controller`
        arguments["controllers_yaml"] = arg("controllers_yaml")
    bringup = PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])
    spawner_arguments = [arg("controller"), "--controller-manager", "/controller_manager"]
    return [
        IncludeLaunchDescription(PythonLaunchDescriptionSource(bringup), launch_arguments=arguments.items()),
        Node(package="controller_manager", executable="spawner", arguments=spawner_arguments, output="screen"),
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot_ip", default_value="",
                              description="required: hostname or IP address of the arm's FCI (e.g. 172.16.0.2)"),
        DeclareLaunchArgument("config", default_value="", description="required: config name in configs/ or a YAML path"),
        DeclareLaunchArgument("arm_id", default_value="fr3", description="arm type: fr3, fer, fp3 (Jazzy also fr3v2)"),
        DeclareLaunchArgument("load_gripper", default_value="true", choices=BOOL,
                              description="start franka_gripper (the homing/move/grasp actions the node uses)"),
        DeclareLaunchArgument("controller", default_value="cartesian_impedance_controller",
                              description="Cartesian controller to spawn; takes PoseStamped on /<controller>/equilibrium_pose"),
        DeclareLaunchArgument("controllers_yaml", default_value="",
                              description="franka_ros2 2.x only: a controllers file that defines the controller"),
        require("robot_ip", "the hostname or IP address of the arm's FCI", EXAMPLE),
        require("config", "a config name in configs/ or a YAML path", EXAMPLE),
        # first: it declares use_sim and the node's arguments, which franka_driver reads
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("dsrl_real"), "launch",
                                                                "dsrl_node.launch.py"])),
            launch_arguments={"config": LaunchConfiguration("config")}.items(),
        ),
        OpaqueFunction(function=franka_driver),
    ])
