"""The ROS 2 launch files, run against the fake launch API (real signatures and launch's include check) in a
colcon-like install tree."""

from pathlib import Path

import pytest
from fakes import launch_fake
from fakes.launch_api import XSARM_MODELS, LaunchAPIMismatch

REPO = Path(__file__).resolve().parent.parent
TASK_LAUNCH_FILES = sorted(p.name for p in (REPO / "launch").glob("*_*.launch.py") if p.name != "dsrl_node.launch.py")
WIDOWX_FILES = [name for name in TASK_LAUNCH_FILES if name.startswith("widowx_")]
FRANKA_FILES = [name for name in TASK_LAUNCH_FILES if name.startswith("franka_")]
NODE_DEFAULTS = {"mode": "train", "reward_backend": "", "resume": False, "use_sim": False, "learner_address": ""}


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
        "dsrl_real_node", None, None, "screen", True, None)  # no name=: no global __node remap (see test_ros_node)
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
                    config="/data/my_task.yaml", learner_address="ray://gpu-box:10001")

    assert result.include("interbotix_xsarm_control").arguments["use_sim"] == "true"
    assert result.node("dsrl_real").parameters == [{
        "config": "/data/my_task.yaml", "mode": "eval", "reward_backend": "roboreward", "resume": True, "use_sim": True,
        "learner_address": "ray://gpu-box:10001",
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


def test_invalid_choices_stop_the_launch(launch):
    with pytest.raises(RuntimeError, match='Argument "mode" provided value "training" is not valid'):
        launch("widowx_monkey.launch.py", mode="training")
    with pytest.raises(RuntimeError, match='Argument "resume" provided value "yes" is not valid'):
        launch("widowx_monkey.launch.py", resume="yes")


def _missing(name, what, example):
    return f"The launch argument '{name}' is missing: give {what}, e.g. `{example}`."


CONFIG, FCI = "a config name in configs/ or a YAML path", "the hostname or IP address of the arm's FCI"


@pytest.mark.parametrize("name, arguments, message", [
    ("dsrl_node.launch.py", {}, _missing("config", CONFIG, "ros2 launch dsrl_real dsrl_node.launch.py config:=widowx_monkey")),
    ("widowx.launch.py", {}, _missing("config", CONFIG, "ros2 launch dsrl_real widowx.launch.py config:=widowx_monkey")),
    ("widowx.launch.py", {"mode": "eval"}, _missing("config", CONFIG, "ros2 launch dsrl_real widowx.launch.py config:=widowx_monkey")),
    ("franka.launch.py", {"config": "franka_pick"}, _missing(
        "robot_ip", FCI, "ros2 launch dsrl_real franka.launch.py robot_ip:=172.16.0.2 config:=franka_pick")),
    ("franka.launch.py", {"robot_ip": "172.16.0.2"}, _missing(
        "config", CONFIG, "ros2 launch dsrl_real franka.launch.py robot_ip:=172.16.0.2 config:=franka_pick")),
    ("franka_pick.launch.py", {}, _missing("robot_ip", FCI, "ros2 launch dsrl_real franka_pick.launch.py robot_ip:=172.16.0.2")),
    ("franka_drawer.launch.py", {"use_sim": "true"}, _missing(
        "robot_ip", FCI, "ros2 launch dsrl_real franka_drawer.launch.py robot_ip:=172.16.0.2")),
])
def test_a_missing_required_argument_is_one_sentence_with_an_example_and_starts_nothing(launch, name, arguments, message):
    with pytest.raises(ValueError) as caught:
        launch(name, **arguments)
    assert str(caught.value) == message  # what `ros2 launch` prints after "Caught exception in launch ...: "


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
    with pytest.raises(RuntimeError) as missing:
        include(use_sim="true")
    assert str(missing.value) == (
        "Included launch description missing required argument 'robot_model' (description: 'model type of the Interbotix "
        f"Arm such as `wx200` or `rx150`. Valid choices are: {list(XSARM_MODELS)}'), given: [use_sim]")
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


# ---- every argument combination of issue 16, under launch's include check -----------------------------------
SERIALS = "third_person=123456789012,wrist=987654321098"
COMBINATIONS = [  # (launch file, command-line arguments, the config the node gets: a file in configs/ or the value given)
    ("widowx_monkey.launch.py", {}, "widowx_monkey.yaml"),
    ("widowx_drawer.launch.py", {}, "widowx_drawer.yaml"),
    ("widowx_monkey.launch.py", {"use_sim": "true"}, "widowx_monkey.yaml"),
    ("widowx_monkey.launch.py", {"camera_serials": SERIALS}, "widowx_monkey.yaml"),
    ("widowx_monkey.launch.py", {"overrides": "train.out_dir=runs/a run.seed=1"}, "widowx_monkey.yaml"),
    ("widowx_monkey.launch.py", {"node_prefix": "xterm -hold -e"}, "widowx_monkey.yaml"),
    ("widowx_drawer.launch.py", {"mode": "eval", "resume": "true"}, "widowx_drawer.yaml"),
    ("widowx.launch.py", {"config": "widowx_monkey"}, "widowx_monkey"),
    ("dsrl_node.launch.py", {"config": "widowx_monkey"}, "widowx_monkey"),
    ("dsrl_node.launch.py", {"config": "widowx_monkey", "start_node": "false"}, None),
    ("franka_pick.launch.py", {"robot_ip": "172.16.0.2"}, "franka_pick.yaml"),
    ("franka_drawer.launch.py", {"robot_ip": "172.16.0.2"}, "franka_drawer.yaml"),
    ("franka_pick.launch.py", {"robot_ip": "172.16.0.2", "use_sim": "true"}, "franka_pick.yaml"),
    ("franka.launch.py", {"robot_ip": "172.16.0.2", "config": "franka_pick"}, "franka_pick"),
    ("franka.launch.py", {"robot_ip": "172.16.0.2", "config": "franka_pick", "controllers_yaml": "/data/controllers.yaml"},
     "franka_pick"),
]


@pytest.mark.parametrize("name, arguments, config", COMBINATIONS,
                         ids=[f"{n} {' '.join(f'{k}:={v}' for k, v in a.items())}" for n, a, _ in COMBINATIONS])
def test_every_launch_file_starts_with_every_argument_combination(launch, prefix, name, arguments, config):
    result = launch(name, **arguments)

    drivers = {i.package for i in result.includes} - {"dsrl_real", "realsense2_camera"}
    assert drivers == ({"interbotix_xsarm_control"} if name.startswith("widowx") else
                       {"franka_bringup"} if name.startswith("franka") else set())
    if config is None:
        assert result.nodes == []
        return
    node = result.node("dsrl_real")
    expected = str(prefix / "share" / "dsrl_real" / "configs" / config) if config.endswith(".yaml") else config
    assert node.parameters[0]["config"] == expected
    for key in ("mode", "use_sim"):
        assert str(node.parameters[0][key]).lower() == arguments.get(key, NODE_DEFAULTS[key] if key == "mode" else "false")
    if "camera_serials" in arguments:
        assert [i.arguments["camera_name"] for i in result.includes if i.package == "realsense2_camera"] == [
            "third_person", "wrist"]
    if "overrides" in arguments:
        assert node.parameters[0]["overrides"] == ("train.out_dir=runs/a", "run.seed=1")
    assert node.prefix == arguments.get("node_prefix")


# ---- the fake runs launch's required-argument check of an include (launch_api) ---------------------------------
def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text("from launch import LaunchDescription\n"
                    "from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription\n"
                    "from launch.conditions import IfCondition\n"
                    "from launch.launch_description_sources import PythonLaunchDescriptionSource\n\n\n"
                    f"def generate_launch_description():\n    return LaunchDescription([{text}])\n")
    return path


def test_the_old_includes_without_forwarded_arguments_fail_with_launchs_message(launch, tmp_path):
    # The launch files before the fix: the node file requires config, the wrappers include it passing nothing.
    node = _write(tmp_path, "old_node.launch.py",
                  'DeclareLaunchArgument("config", description="config name in configs/ or a YAML path")')
    robot = _write(tmp_path, "old_widowx.launch.py",
                   f'DeclareLaunchArgument("robot_model", default_value="wx250s"), '
                   f'IncludeLaunchDescription(PythonLaunchDescriptionSource("{node}"))')
    task = _write(tmp_path, "old_widowx_monkey.launch.py",
                  f'DeclareLaunchArgument("config", default_value="/share/configs/widowx_monkey.yaml"), '
                  f'IncludeLaunchDescription(PythonLaunchDescriptionSource("{robot}"))')
    message = ("Included launch description missing required argument 'config' "
               "(description: 'config name in configs/ or a YAML path'), given: []")

    for path, arguments in ((task, {}), (robot, {"config": "widowx_monkey"})):  # the command line does not count
        with pytest.raises(RuntimeError) as caught:
            launch.fake.run(launch.fake.load(path).generate_launch_description(), arguments)
        assert str(caught.value) == message
    # `ros2 launch` includes the file it is given with the command-line arguments: a top-level miss names them
    with pytest.raises(RuntimeError) as caught:
        launch.fake.run(launch.fake.load(node).generate_launch_description(), {"mode": "eval"})
    assert str(caught.value) == message.replace("given: []", "given: [mode]")


def test_the_include_check_skips_defaults_and_conditional_declarations_and_counts_nested_includes_names(launch, tmp_path):
    inner = _write(tmp_path, "inner.launch.py",
                   'DeclareLaunchArgument("a"), DeclareLaunchArgument("b", default_value="1"), '
                   'DeclareLaunchArgument("c", condition=IfCondition("false"))')
    middle = _write(tmp_path, "middle.launch.py",
                    f'IncludeLaunchDescription(PythonLaunchDescriptionSource("{inner}"), launch_arguments=[("a", "x")])')
    conditional = _write(tmp_path, "conditional.launch.py",
                         f'IncludeLaunchDescription(PythonLaunchDescriptionSource("{inner}"), condition=IfCondition("false"))')

    # `a` is required by inner, but middle's own include passes it: launch counts that include's names
    assert launch.fake.run(launch.fake.load(middle).generate_launch_description()).configurations == {"a": "x", "b": "1"}
    # Upstream marks only the direct sub-entities of a conditional action as "conditionally included"; the
    # declarations inside a conditionally included file are not, so `a` is still required (checked with the real
    # launch on humble and jazzy: same message).
    with pytest.raises(RuntimeError) as caught:
        launch.fake.run(launch.fake.load(conditional).generate_launch_description())
    assert str(caught.value) == ("Included launch description missing required argument 'a' "
                                 "(description: 'no description given'), given: []")


def test_launch_ros_would_start_our_node_without_a_node_name_remap(launch, tmp_path):
    node = launch("widowx_monkey.launch.py", overrides="run.seed=1").node("dsrl_real")
    argv = node.command_line(tmp_path)

    assert argv == ["--ros-args", "--params-file", str(tmp_path / "launch_params_dsrl_real_node_0")]
    assert "__node:=" not in " ".join(argv)
    text = (tmp_path / "launch_params_dsrl_real_node_0").read_text()
    assert text.startswith("/**:\n  ros__parameters:\n") and "overrides: !!python/tuple\n    - run.seed=1\n" in text
