"""The Franka adapter against the fake rclpy and a simulated franka_ros2 (real signatures, messages and QoS)."""

import inspect
import math
import sys

import numpy as np
import pytest
from fakes import rclpy_fake
from fakes import ros_api as api
from scipy.spatial.transform import Rotation

from dsrl_real.config import RobotConfig, load_config
from dsrl_real.geometry import rpy_to_matrix
from dsrl_real.robots import ros_runtime as ros
from dsrl_real.robots.base import PoseTarget, Robot
from dsrl_real.robots.franka import FrankaRobot

COMMAND = "/cartesian_impedance_controller/equilibrium_pose"
POSE = "/franka_robot_state_broadcaster/current_pose"
DOWN = rpy_to_matrix(math.pi, 0.0, 0.0)


# franka_drawer.yaml's safety box: the start pose must lie inside it.
FRANKA_BOX = ("safety.workspace_low=[0.30,-0.30,0.05]", "safety.workspace_high=[0.70,0.30,0.50]",
              "safety.rpy_low=[-0.6,-0.6,-1.6]", "safety.rpy_high=[0.6,0.6,1.6]")


def robot_cfg(*overrides: str) -> RobotConfig:
    return load_config(overrides=["robot.kind=franka", "robot.driver_timeout_s=5", "robot.start_xyz=[0.45,0.0,0.30]",
                                  "robot.start_rpy=[0.0,0.0,0.0]", *FRANKA_BOX, *overrides]).robot


@pytest.fixture
def graph():
    with rclpy_fake.install() as fake:
        runtime = ros.RosRuntime.start()
        ros.set_runtime(runtime)
        yield fake, runtime.node
        ros.set_runtime(None)
        runtime.close()


@pytest.fixture
def franka(graph):
    fake, node = graph
    arm = rclpy_fake.FakeFranka(fake).start()
    robot = FrankaRobot.connect(robot_cfg(), node=node, sleep=lambda s: None)
    return fake, arm, robot


def settle(fake, robot, xyz) -> None:
    """reset() returns within 1 cm of its goal; wait until the exact pose has come back."""
    assert fake.wait_for(lambda: np.allclose(robot.state().xyz, xyz, atol=1e-12))


def published(fake) -> list:
    return [c.args[0] for c in fake.calls_named("Publisher.publish")]


def pose_of(msg) -> tuple[np.ndarray, np.ndarray]:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()


def test_connect_reset_command_and_state_through_franka_ros2(franka):
    fake, arm, robot = franka
    assert isinstance(robot, Robot)
    assert [name for name, _ in arm.gripper_goals] == ["homing"]
    robot.reset()
    xyz, rot = pose_of(arm.targets[-1])
    np.testing.assert_allclose(xyz, [0.45, 0.0, 0.30], atol=1e-12)
    np.testing.assert_allclose(rot, DOWN, atol=1e-12)  # start_rpy 0 = the reference: gripper pointing down
    name, goal = arm.gripper_goals[-1]
    assert name == "move" and (goal.width, goal.speed) == (0.08, 0.1)
    settle(fake, robot, [0.45, 0.0, 0.30])
    state = robot.state()
    np.testing.assert_allclose(state.xyz, [0.45, 0.0, 0.30], atol=1e-9)
    np.testing.assert_allclose(state.rpy, [0.0, 0.0, 0.0], atol=1e-9)
    assert state.gripper == 1.0 and state.joints.shape == (7,)

    since = len(arm.targets)
    assert robot.command(PoseTarget(state.xyz + [0.02, -0.01, 0.0], np.array([0.0, 0.0, 0.1]), gripper_open=False), 1 / 15)
    assert arm.wait_for_targets(since + 1)
    msg = arm.targets[since]
    assert msg.header.frame_id == "fr3_link0" and msg.header.stamp.sec > 0
    xyz, rot = pose_of(msg)
    np.testing.assert_allclose(xyz, [0.47, -0.01, 0.30], atol=1e-12)
    np.testing.assert_allclose(rot, rpy_to_matrix(0.0, 0.0, 0.1) @ DOWN, atol=1e-12)  # yaw about the base's vertical
    assert fake.wait_for(lambda: len(arm.gripper_goals) == 3)
    name, goal = arm.gripper_goals[-1]
    assert name == "grasp" and (goal.width, goal.speed, goal.force) == (0.0, 0.1, 20.0)
    assert (goal.epsilon.inner, goal.epsilon.outer) == (0.08, 0.08)
    arm.wait_ticks(2)
    state = robot.state()
    np.testing.assert_allclose(state.rpy, [0.0, 0.0, 0.1], atol=1e-9)
    assert state.gripper == 0.0  # closed on nothing
    assert robot.command(PoseTarget(state.xyz, state.rpy, gripper_open=False), 1 / 15)  # same gripper state: no goal
    assert len(arm.gripper_goals) == 3
    for call in fake.calls:  # re-validate independently of the fake's own check
        if "." in call.name and call.name.split(".")[0] in api.OWNERS or call.name in api.FUNCTIONS:
            api.check_call(api.spec_for(call.name), call.args, call.kwargs, name=call.name)


def test_reset_streams_targets_at_the_move_speed(franka):
    _, arm, robot = franka
    since = len(arm.targets)
    robot.reset()  # from z = 0.35 down to 0.30 at 0.1 m/s in 50 Hz steps: 0.5 s, 25 targets
    positions = np.array([pose_of(m)[0] for m in arm.targets[since:]])
    assert len(positions) == 25
    np.testing.assert_allclose(np.diff(positions[:, 2]), -0.05 / 25, atol=1e-12)
    np.testing.assert_allclose(positions[-1], [0.45, 0.0, 0.30], atol=1e-12)


def test_home_moves_to_the_configured_pose(franka):
    _, arm, robot = franka
    robot.home()
    xyz, rot = pose_of(arm.targets[-1])
    np.testing.assert_allclose(xyz, [0.35, 0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(rot, DOWN, atol=1e-12)


def test_non_finite_target_is_refused_and_nothing_is_sent(franka):
    fake, arm, robot = franka
    robot.reset()
    sent = len(published(fake))
    goals = len(arm.gripper_goals)
    assert robot.command(PoseTarget(np.array([np.nan, 0.0, 0.3]), np.zeros(3), gripper_open=False), 0.066) is False
    assert robot.command(PoseTarget(np.array([0.45, 0.0, 0.3]), np.array([0.0, np.inf, 0.0]), True), 0.066) is False
    assert robot.refusals == 2 and len(published(fake)) == sent
    assert fake.calls_named("ActionClient.send_goal_async")[-1].args[0].__class__.__name__ == "Move_Goal"  # reset's
    assert len(arm.gripper_goals) == goals


def test_stop_holds_the_measured_pose_and_refuses_targets_until_reset(franka):
    fake, arm, robot = franka
    robot.reset()
    settle(fake, robot, [0.45, 0.0, 0.30])
    state = robot.state()
    robot.stop()
    xyz, rot = pose_of(arm.targets[-1])
    np.testing.assert_allclose(xyz, state.xyz, atol=1e-12)
    np.testing.assert_allclose(rot, DOWN, atol=1e-9)
    sent = len(published(fake))
    assert robot.command(PoseTarget(state.xyz + [0.01, 0, 0], state.rpy, True), 0.066) is False
    assert len(published(fake)) == sent and robot.refusals == 1
    robot.reset()
    assert robot.command(PoseTarget(state.xyz + [0.01, 0, 0], state.rpy, True), 0.066) is True


def test_a_stop_from_another_thread_ends_a_reset_move_without_another_target(graph):
    import threading

    fake, node = graph
    arm = rclpy_fake.FakeFranka(fake).start()
    sleeps = []

    def sleep(seconds):  # called after each interpolated target; the 5th time an emergency stop comes in
        sleeps.append(seconds)
        if len(sleeps) == 5:
            stopper = threading.Thread(target=robot.stop)
            stopper.start()
            stopper.join()

    robot = FrankaRobot.connect(robot_cfg(), node=node, sleep=sleep)
    with pytest.raises(RuntimeError, match=r"^The Franka was stopped during its start move\.$"):
        robot.reset()
    assert len(arm.targets) == 5 + 1  # five steps of the move, then the hold; nothing after it
    assert [name for name, _ in arm.gripper_goals] == ["homing"]  # the gripper was not opened either


def test_close_holds_and_releases_every_ros_entity(franka):
    fake, arm, robot = franka
    robot.reset()
    settle(fake, robot, [0.45, 0.0, 0.30])
    robot.close()
    robot.close()
    np.testing.assert_allclose(pose_of(arm.targets[-1])[0], [0.45, 0.0, 0.30], atol=1e-9)
    assert fake.count_publishers(COMMAND) == 0 and fake.count_subscribers(POSE) == 0
    assert len(fake.calls_named("ActionClient.destroy")) == 3


@pytest.mark.parametrize("parts, missing", [
    ({"controller": False}, "no controller subscribes to /cartesian_impedance_controller/equilibrium_pose"),
    ({"broadcaster": False}, "no pose on /franka_robot_state_broadcaster/current_pose"),
    ({"gripper": False}, "no gripper state on /fr3_gripper/joint_states, no gripper action server /fr3_gripper/homing, "
                         "no gripper action server /fr3_gripper/move, no gripper action server /fr3_gripper/grasp"),
])
def test_driver_not_running_is_one_sentence_and_nothing_is_sent(graph, parts, missing):
    fake, node = graph
    rclpy_fake.FakeFranka(fake, **parts).start()
    with pytest.raises(RuntimeError) as info:
        FrankaRobot.connect(robot_cfg("robot.driver_timeout_s=0.3"), node=node)
    assert str(info.value) == (
        f"The Franka driver did not come up within 0.3 s ({missing}); start it with `ros2 launch franka_bringup "
        "franka.launch.py robot_ip:=<fci-ip>` and a Cartesian controller taking geometry_msgs/PoseStamped targets on "
        "/cartesian_impedance_controller/equilibrium_pose (robot.franka.command_topic), then run again.")
    assert fake.calls_named("Publisher.publish") == [] and fake.calls_named("ActionClient.send_goal_async") == []
    assert all(s.node is None for s in fake._subs) and all(p.node is None for p in fake._pubs)  # released


def test_no_franka_at_all(graph):
    _, node = graph
    with pytest.raises(RuntimeError, match=r"within 0\.2 s \(no controller subscribes to .*, no pose on .*, no gripper"):
        FrankaRobot.connect(robot_cfg("robot.driver_timeout_s=0.2"), node=node)


def test_a_failing_gripper_is_one_sentence(graph):
    fake, node = graph
    rclpy_fake.FakeFranka(fake, gripper_succeeds=False).start()
    with pytest.raises(RuntimeError) as info:
        FrankaRobot.connect(robot_cfg(), node=node)
    assert str(info.value) == (
        "The Franka gripper's /fr3_gripper/homing failed (libfranka: gripper command failed); home it (`ros2 action "
        "send_goal /fr3_gripper/homing franka_msgs/action/Homing {}`) and check its fingers.")
    assert fake.calls_named("Publisher.publish") == []


def test_state_that_stops_arriving_is_refused(graph):
    fake, node = graph
    arm = rclpy_fake.FakeFranka(fake).start()
    robot = FrankaRobot.connect(robot_cfg("robot.franka.state_timeout_s=0.05"), node=node, sleep=lambda s: None)
    robot.state()
    arm.pause()  # the broadcaster stops (driver crash, reflex, unplugged cable)
    for _ in range(1000):
        try:
            robot.state()
        except RuntimeError as err:
            message = str(err)
            break
        arm._stop.wait(0.01)
    else:
        pytest.fail("stale state was never refused")
    assert message.startswith("The Franka pose on /franka_robot_state_broadcaster/current_pose is ")
    assert message.endswith(" s old (limit robot.franka.state_timeout_s = 0.05 s); the driver or its state broadcaster "
                            "stopped: check `ros2 topic hz /franka_robot_state_broadcaster/current_pose` and restart it.")


def test_the_state_topics_need_a_best_effort_subscriber(graph):
    """The fact behind our QoS choice: a default (reliable) subscriber never hears the broadcaster."""
    fake, node = graph
    rclpy_fake.FakeFranka(fake).start()
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data

    heard = {"reliable": 0, "best_effort": 0}
    node.create_subscription(PoseStamped, POSE, lambda m: heard.__setitem__("reliable", heard["reliable"] + 1), 10)
    node.create_subscription(PoseStamped, POSE, lambda m: heard.__setitem__("best_effort", heard["best_effort"] + 1),
                             qos_profile_sensor_data)
    assert fake.wait_for(lambda: heard["best_effort"] >= 3)
    assert heard["reliable"] == 0


def test_calls_and_fields_the_real_api_lacks_fail(graph):
    fake, node = graph
    import rclpy
    from franka_msgs.action import Grasp, Move
    from geometry_msgs.msg import PoseStamped
    from rclpy.action import ActionClient
    from sensor_msgs.msg import Image, JointState

    with pytest.raises(api.RosAPIMismatch, match="unexpected keyword argument 'qos'"):
        node.create_publisher(PoseStamped, COMMAND, 1, qos=1)
    with pytest.raises(api.RosAPIMismatch, match="missing a required argument: 'qos_profile'"):
        node.create_subscription(PoseStamped, POSE, print)
    with pytest.raises(AttributeError, match="no public method 'subscribe'"):
        node.subscribe(PoseStamped, POSE, print)
    with pytest.raises(TypeError, match="unexpected keyword argument 'enable_logger_service'"):
        rclpy.node.Node("other", enable_logger_service=True)  # Jazzy has it, Humble does not
    with pytest.raises(api.RosAPIMismatch, match="unexpected keyword argument 'argv'"):
        rclpy.init(argv=[])
    with pytest.raises(api.RosAPIMismatch, match="argument 'timeout_sec' must be a number"):
        ActionClient(node, Move, "/fr3_gripper/move").wait_for_server(timeout_sec="1")
    with pytest.raises(AttributeError, match="'Point' object has no attribute 'w'"):
        PoseStamped().pose.position.w = 1.0
    with pytest.raises(AssertionError, match="Invalid arguments passed to constructor: encodng"):
        Image(encodng="rgb8")
    with pytest.raises(AssertionError, match="The 'x' field must be of type 'float'"):
        PoseStamped().pose.position.x = 1  # an int, which rosidl refuses for a float64
    with pytest.raises(AssertionError, match="The 'position' field must be a set or sequence"):
        JointState(position=np.zeros(7))  # numpy arrays are not sequences to rosidl
    with pytest.raises(AssertionError, match="The 'epsilon' field must be a sub message of type 'GraspEpsilon'"):
        Grasp.Goal(epsilon=0.08)
    publisher = node.create_publisher(PoseStamped, COMMAND, 1)
    with pytest.raises(TypeError, match="Expected"):
        publisher.publish(JointState())
    with pytest.raises(TypeError):
        ActionClient(node, Grasp, "/fr3_gripper/grasp").send_goal_async(Move.Goal())
    assert PoseStamped().pose.orientation.w == 1.0  # geometry_msgs/Quaternion's default
    assert list(Image._FIELDS) == ["header", "height", "width", "encoding", "is_bigendian", "step", "data"]


def test_fake_has_exactly_the_real_signatures():
    pairs = [(rclpy_fake.Node, api.Node), (rclpy_fake.Publisher, api.Publisher),
             (rclpy_fake.Subscription, api.Subscription), (rclpy_fake.RcutilsLogger, api.RcutilsLogger),
             (rclpy_fake.Clock, api.Clock), (rclpy_fake.Time, api.Time), (rclpy_fake.Future, api.Future),
             (rclpy_fake.ActionClient, api.ActionClient), (rclpy_fake.ClientGoalHandle, api.ClientGoalHandle),
             (rclpy_fake._Executor, api.Executor)]

    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    def public(cls):
        return {n for n, v in vars(cls).items() if inspect.isfunction(v) and (n == "__init__" or not n.startswith("_"))}

    for fake_cls, real_cls in pairs:
        real = public(real_cls) - ({"__init__"} if real_cls in (api.Executor, api.Publisher, api.Subscription,
                                                                api.RcutilsLogger, api.Clock, api.ClientGoalHandle) else set())
        fake = public(fake_cls) - ({"__init__"} if "__init__" not in real else set())
        assert fake == real, (fake_cls.__name__, fake ^ real)
        for name in real:
            assert shape(getattr(fake_cls, name)) == shape(getattr(real_cls, name)), (fake_cls.__name__, name)
    for cls, real in ((rclpy_fake.SingleThreadedExecutor, api.SingleThreadedExecutor),
                      (rclpy_fake.MultiThreadedExecutor, api.MultiThreadedExecutor)):
        assert shape(cls.__init__) == shape(real.__init__)
    with rclpy_fake.install():
        import rclpy

        for name, real_fn in api.FUNCTIONS.items():
            assert shape(getattr(rclpy, name)) == shape(real_fn), name


def test_missing_rclpy_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "rclpy", None)
    with pytest.raises(ImportError, match=r"needs ROS 2's Python client library `rclpy`, which is not on PyPI: install "
                                          r"ROS 2 Humble .* `source /opt/ros/humble/setup.bash`"):
        FrankaRobot.connect(robot_cfg())


def test_factory_builds_a_franka_env_with_topic_and_realsense_cameras(graph):
    from fakes import realsense as fake_rs

    from dsrl_real.envs.make import build_env

    fake, _ = graph
    arm = rclpy_fake.FakeFranka(fake).start()
    for side in ("left", "right"):
        rclpy_fake.FakeImageTopic(fake, f"/exterior_{side}/color/image_raw", np.zeros((360, 640, 3), np.uint8)).start()
    cfg = load_config("franka_drawer", ["robot.driver_timeout_s=5", "robot.franka.move_speed=3.0"])
    with fake_rs.install({"42": np.zeros((480, 640, 3), np.uint8)}):
        env = build_env(cfg, prompt=lambda text: "")
        obs, _ = env.reset(seed=0)
        assert {k: v.shape for k, v in obs.items()} == {
            "proprio": (7,), "exterior_left_image": (128, 128, 3), "exterior_right_image": (128, 128, 3),
            "wrist_image": (128, 128, 3)}
        np.testing.assert_allclose(obs["proprio"], [0.45, 0.0, 0.30, 0.0, 0.0, 0.0, 1.0], atol=0.011)  # within 1 cm
        settle(fake, env.robot, [0.45, 0.0, 0.30])
        since = len(arm.targets)
        _, _, _, _, info = env.step(np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))  # beyond the 3 cm step limit
        assert info["safety_intervened"] and not info["refused"]
        np.testing.assert_allclose(pose_of(arm.targets[since])[0], [0.48, 0.0, 0.30], atol=1e-6)
        env.close()
    assert all(s.node is None for s in fake._subs)  # every subscription of ours is gone


def test_a_camera_that_fails_closes_the_connected_arm(graph):
    from dsrl_real.config import ConfigError
    from dsrl_real.envs.make import build_env

    fake, _ = graph
    arm = rclpy_fake.FakeFranka(fake).start()
    cfg = load_config("franka_drawer", ["robot.driver_timeout_s=5", "cameras.0.topic="])
    with pytest.raises(ConfigError, match="Camera 'exterior_left' has kind 'ros_topic' but no topic"):
        build_env(cfg, prompt=lambda text: "")
    assert fake.count_publishers(COMMAND) == 0 and len(arm.targets) == 1  # closed: one hold target, then released
