"""The ROS 2 launch files, run against the fake launch API (real signatures) in a colcon-like install tree."""

from pathlib import Path

import pytest

from dsrl_real.sim_mocks import launch_fake
from dsrl_real.sim_mocks.launch_api import LaunchAPIMismatch

REPO = Path(__file__).resolve().parent.parent
TASK_LAUNCH_FILES = sorted(p.name for p in (REPO / "launch").glob("*_*.launch.py") if p.name != "dsrl_node.launch.py")
WIDOWX_FILES = [name for name in TASK_LAUNCH_FILES if name.startswith("widowx_")]
FRANKA_FILES = [name for name in TASK_LAUNCH_FILES if name.startswith("franka_")]
NODE_DEFAULTS = {"mode": "train", "reward_backend": "", "resume": False, "use_sim": False}


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """What `colcon build` installs from setup.py / setup.cfg (only those files: nothing from the source tree)."""
    return launch_fake.install_like_colcon(REPO, tmp_path_factory.mktemp("install") / "dsrl_real")


@pytest.fixture
def launch(prefix):
    with launch_fake.install(prefixes=[prefix]) as fake:
        def run(name: str, **arguments):
            path = prefix / "share" / "dsrl_real" / "launch" / name  # the installed copy, as ros2 launch finds it
            return fake.run(fake.load(path).generate_launch_description(), arguments)

        run.fake = fake
        yield run


def test_the_repository_has_the_expected_launch_files():
    assert WIDOWX_FILES == ["widowx_drawer.launch.py", "widowx_monkey.launch.py"]
    assert FRANKA_FILES == ["franka_drawer.launch.py", "franka_pick.launch.py"]


@pytest.mark.parametrize("name", WIDOWX_FILES)
def test_widowx_launch_starts_the_interbotix_driver_and_our_node_with_the_installed_config(launch, prefix, name):
    result = launch(name)

    driver = result.include("interbotix_xsarm_control")
    assert driver.path == "launch/xsarm_control.launch.py"
    assert driver.arguments == {"robot_model": "wx250s", "use_rviz": "false", "use_sim": "false"}
    assert [(i.package, i.path) for i in result.includes] == [
        ("dsrl_real", "launch/widowx.launch.py"), ("dsrl_real", "launch/dsrl_node.launch.py"),
        ("interbotix_xsarm_control", "launch/xsarm_control.launch.py")]

    node = result.node("dsrl_real")
    assert (node.executable, node.name, node.namespace, node.output, node.emulate_tty, node.prefix) == (
        "dsrl_real_node", "dsrl_real", None, "screen", True, None)
    config = prefix / "share" / "dsrl_real" / "configs" / name.replace(".launch.py", ".yaml")
    assert node.parameters == [{"config": str(config), **NODE_DEFAULTS}]
    assert config.read_text() == (REPO / "configs" / config.name).read_text()
    assert len(result.nodes) == 1


@pytest.mark.parametrize("name", TASK_LAUNCH_FILES)
def test_every_config_a_launch_file_names_is_installed(launch, prefix, name):
    config = Path(launch(name, robot_ip="172.16.0.2").node("dsrl_real").parameters[0]["config"])
    assert config.parent == prefix / "share" / "dsrl_real" / "configs"
    assert config.is_file(), f"{name} names {config.name}, which setup.py does not install (add it to configs/)"


def test_launch_arguments_reach_the_node_as_typed_parameters_and_use_sim_reaches_the_driver(launch):
    result = launch("widowx_monkey.launch.py", mode="eval", reward_backend="roboreward", resume="true", use_sim="true",
                    overrides="train.out_dir=runs/a 'task.instruction=pick up the monkey' run.seed=3",
                    config="/data/my_task.yaml")

    assert result.include("interbotix_xsarm_control").arguments["use_sim"] == "true"
    assert result.node("dsrl_real").parameters == [{
        "config": "/data/my_task.yaml", "mode": "eval", "reward_backend": "roboreward", "resume": True, "use_sim": True,
        "overrides": ("train.out_dir=runs/a", "task.instruction=pick up the monkey", "run.seed=3"),
    }]


def test_camera_serials_start_one_realsense_node_per_camera(launch):
    result = launch("widowx_drawer.launch.py", camera_serials="third_person=123456789012, wrist=987654321098")

    cameras = [i for i in result.includes if i.package == "realsense2_camera"]
    assert [c.path for c in cameras] == ["launch/rs_launch.py"] * 2
    assert [c.arguments for c in cameras] == [
        {"camera_namespace": "/", "camera_name": "third_person", "serial_no": "_123456789012", "enable_depth": "false"},
        {"camera_namespace": "/", "camera_name": "wrist", "serial_no": "_987654321098", "enable_depth": "false"},
    ]


def test_a_camera_serial_without_a_name_is_one_clear_error(launch):
    with pytest.raises(ValueError, match=r"camera_serials entry '123456789012' is not NAME=SERIAL; write e\.g\."):
        launch("widowx_monkey.launch.py", camera_serials="123456789012")


def test_start_node_false_starts_only_the_drivers_and_node_prefix_reaches_the_node(launch):
    drivers_only = launch("widowx_monkey.launch.py", start_node="false")
    assert drivers_only.nodes == []
    assert drivers_only.include("interbotix_xsarm_control").arguments["robot_model"] == "wx250s"

    assert launch("widowx_monkey.launch.py", node_prefix="xterm -e").node("dsrl_real").prefix == "xterm -e"


def test_invalid_choices_and_missing_required_arguments_stop_the_launch(launch):
    with pytest.raises(RuntimeError, match='Argument "mode" provided value "training" is not valid'):
        launch("widowx_monkey.launch.py", mode="training")
    with pytest.raises(RuntimeError, match='Argument "resume" provided value "yes" is not valid'):
        launch("widowx_monkey.launch.py", resume="yes")
    with pytest.raises(RuntimeError, match='Required launch argument "config" was not provided'):
        launch("widowx.launch.py")
    with pytest.raises(RuntimeError, match='Required launch argument "robot_ip" was not provided'):
        launch("franka_pick.launch.py")


def test_the_generic_widowx_launch_file_takes_any_config(launch):
    result = launch("widowx.launch.py", config="widowx_drawer", robot_model="wx250")
    assert result.node("dsrl_real").parameters[0]["config"] == "widowx_drawer"
    assert result.include("interbotix_xsarm_control").arguments["robot_model"] == "wx250"


@pytest.mark.parametrize("name", FRANKA_FILES)
def test_franka_launch_starts_franka_bringup_a_cartesian_controller_and_our_node(launch, prefix, name):
    result = launch(name, robot_ip="172.16.0.2")

    bringup = result.include("franka_bringup")
    assert bringup.path == "launch/franka.launch.py"
    assert bringup.arguments == {
        "robot_ip": "172.16.0.2", "arm_id": "fr3", "robot_type": "fr3", "load_gripper": "true",
        "use_fake_hardware": "false", "use_rviz": "false", "load_franka_robot_state_broadcaster": "true",
    }
    spawner = result.node("controller_manager")
    assert (spawner.executable, spawner.arguments) == (
        "spawner", ["cartesian_impedance_controller", "--controller-manager", "/controller_manager"])
    node = result.node("dsrl_real")
    assert node.executable == "dsrl_real_node"
    config = prefix / "share" / "dsrl_real" / "configs" / name.replace(".launch.py", ".yaml")
    assert node.parameters == [{"config": str(config), **NODE_DEFAULTS}]


def test_franka_use_sim_runs_fake_hardware_and_controllers_yaml_is_passed_on(launch):
    result = launch("franka.launch.py", config="/data/franka_task.yaml", robot_ip="dont-care", use_sim="true",
                    controller="my_pose_controller", controllers_yaml="/data/controllers.yaml")

    arguments = result.include("franka_bringup").arguments
    assert (arguments["use_fake_hardware"], arguments["load_franka_robot_state_broadcaster"]) == ("true", "false")
    assert arguments["controllers_yaml"] == "/data/controllers.yaml"
    assert result.node("controller_manager").arguments[0] == "my_pose_controller"
    assert result.node("dsrl_real").parameters[0]["use_sim"] is True


# ---- the fake rejects what the real launch API would reject ------------------------------------------------------
def test_the_fake_rejects_a_misspelt_keyword_of_node_and_declare_launch_argument(launch):
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    with pytest.raises(LaunchAPIMismatch, match=r"Node\(\.\.\.\) has no parameter \['executeable'\] in the real API"):
        Node(package="dsrl_real", executeable="dsrl_real_node")
    with pytest.raises(LaunchAPIMismatch, match=r"has no parameter \['default'\]"):
        DeclareLaunchArgument("mode", default="train")
    with pytest.raises(LaunchAPIMismatch, match="must be a bool"):
        Node(package="dsrl_real", executable="dsrl_real_node", emulate_tty="true")


def test_the_fake_checks_includes_against_what_the_upstream_launch_file_declares(launch):
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    def include(**arguments):
        source = PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("interbotix_xsarm_control"), "launch", "xsarm_control.launch.py"]))
        return launch.fake.run(LaunchDescription([IncludeLaunchDescription(source, launch_arguments=arguments.items())]))

    assert include(robot_model="wx250s").include("interbotix_xsarm_control").arguments == {"robot_model": "wx250s"}
    with pytest.raises(LaunchAPIMismatch, match=r"declares no argument \['use_rvis'\]"):
        include(robot_model="wx250s", use_rvis="false")
    with pytest.raises(LaunchAPIMismatch, match=r"requires \['robot_model'\]"):
        include(use_sim="true")
    with pytest.raises(LaunchAPIMismatch, match="robot_model:='wx251s' is not one of"):
        include(robot_model="wx251s")
    with pytest.raises(LaunchAPIMismatch, match="SomeSubstitutionsType"):
        include(robot_model="wx250s", use_sim=True)


def test_the_fake_evaluates_node_parameters_with_launch_ros_rules(launch):
    from launch import LaunchDescription
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def node(parameters, **kwargs):
        return launch.fake.run(LaunchDescription([Node(package="dsrl_real", executable="dsrl_real_node",
                                                       parameters=[parameters], **kwargs)]), {"x": "3"})

    evaluated = node({"a": LaunchConfiguration("x"), "b": "3", "c": [1, 2.5], "d": {"e": True}}).node("dsrl_real")
    assert evaluated.parameters == [{"a": 3, "b": "3", "c": (1.0, 2.5), "d.e": True}]
    with pytest.raises(TypeError, match="non-empty sequence"):
        node({"overrides": []})
    with pytest.raises(LaunchAPIMismatch, match="Unexpected type for parameter value None"):
        node({"reward_backend": None})
    with pytest.raises(launch_fake.InvalidConditionExpressionError, match="'yes'"):
        node({}, condition=IfCondition("yes"))
    with pytest.raises(RuntimeError, match="executable 'dsrl_real_nod' not found"):
        launch.fake.run(LaunchDescription([Node(package="dsrl_real", executable="dsrl_real_nod")]))
