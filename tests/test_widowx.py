"""The WidowX adapter against the fake Interbotix API (real signatures, simulated arm)."""

import inspect
import sys
import threading
import time

import numpy as np
import pytest
from fakes import interbotix as fake_ix
from fakes import interbotix_api as api

from dsrl_real.config import RobotConfig, load_config
from dsrl_real.envs.make import safety_limits
from dsrl_real.envs.robot_env import RobotEnv
from dsrl_real.geometry import matrix_to_rpy, pose_to_matrix
from dsrl_real.robots.base import PoseTarget, Robot
from dsrl_real.robots.sim import SimScene
from dsrl_real.robots.widowx import WidowXRobot
from dsrl_real.sim import kinematics
from dsrl_real.sim.expert import ScriptedExpert
from dsrl_real.sim.tabletop import START_RPY, START_XYZ, Tabletop
from dsrl_real.tasks import MONKEY

CFG = RobotConfig(kind="widowx", driver_timeout_s=5.0)
RPY = list(START_RPY)
Z = START_XYZ[2]


def reach_limit_x() -> float:
    """Largest x reachable at z=START z with the start orientation (bisection on the kinematics)."""
    lo, hi = 0.25, 0.8
    for _ in range(60):
        mid = (lo + hi) / 2
        _, ok = kinematics.inverse(pose_to_matrix([mid, 0.0, Z], RPY))
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


X_MAX = reach_limit_x()


@pytest.fixture
def setup():
    sim = Tabletop("monkey", seed=0)
    with fake_ix.install(sim) as fake:
        robot = WidowXRobot.connect(CFG)
        yield sim, fake, robot


def new_calls(fake, since: int) -> list:
    return fake.calls[since:]


def move_arm_to(robot, xyz, rpy=RPY):
    """Put the arm at a pose through the (fake) API, as a test setup step."""
    q, ok = kinematics.inverse(pose_to_matrix(xyz, rpy))
    assert ok
    assert robot.bot.arm.set_joint_positions([float(v) for v in q])


def test_full_episode_with_scripted_expert_succeeds_and_uses_only_real_calls():
    sim = Tabletop("monkey", seed=0)
    with fake_ix.install(sim) as fake:
        robot = WidowXRobot.connect(CFG)
        assert isinstance(robot, Robot)
        env = RobotEnv(robot, [], SimScene(sim), MONKEY, safety_limits(load_config()))
        env.reset(seed=3)
        expert = ScriptedExpert(sim)
        for _ in range(MONKEY.max_steps):
            _, reward, terminated, truncated, info = env.step(expert.act())
            if terminated or truncated:
                break
        assert terminated and not truncated
        assert info["success"] is True and reward == 1.0
        assert robot.refusals == 0 and info["safety_counts"]["refused"] == 0
        env.close()

    names = set(fake.names())
    assert {"bot.__init__", "robot_startup", "arm.go_to_home_pose", "arm.set_ee_pose_components",
            "arm.set_joint_positions", "gripper.grasp", "gripper.release", "arm.go_to_sleep_pose",
            "robot_shutdown"} <= names
    for call in fake.calls:  # re-validate independently of the fake's own check
        api.check_call(api.spec_for(call.name), call.args, call.kwargs, name=call.name)
    for call in fake.calls_named("arm.set_joint_positions"):
        assert call.kwargs == {"moving_time": 0.2, "accel_time": 0.05, "blocking": False}


def test_fake_has_exactly_the_real_signatures():
    pairs = [(fake_ix.InterbotixManipulatorXS, api.InterbotixManipulatorXS),
             (fake_ix.InterbotixArmXSInterface, api.InterbotixArmXSInterface),
             (fake_ix.InterbotixGripperXSInterface, api.InterbotixGripperXSInterface),
             (fake_ix.InterbotixRobotXSCore, api.InterbotixRobotXSCore)]

    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    for fake_cls, real_cls in pairs:
        real = {n for n, v in vars(real_cls).items() if callable(v) and (n == "__init__" or not n.startswith("_"))}
        fake = {n for n, v in vars(fake_cls).items() if callable(v) and (n == "__init__" or not n.startswith("_"))}
        assert fake == real, (fake_cls.__name__, fake ^ real)
        for name in real:
            assert shape(getattr(fake_cls, name)) == shape(getattr(real_cls, name)), (fake_cls.__name__, name)
    for name, real_fn in api.FUNCTIONS.items():
        assert shape(getattr(fake_ix.FakeInterbotix, name))[1:] == shape(real_fn), name


def test_calls_the_real_api_lacks_raise(setup):
    _, fake, robot = setup
    arm = robot.bot.arm
    with pytest.raises(api.InterbotixAPIMismatch, match="unexpected keyword argument 'speed'"):
        arm.set_ee_pose_components(x=0.3, speed=1)
    with pytest.raises(api.InterbotixAPIMismatch, match="argument 'x' must be a number"):
        arm.set_ee_pose_components(x=np.array([0.3, 0.1]))
    with pytest.raises(api.InterbotixAPIMismatch, match="missing a required argument: 'delay'"):
        robot.bot.gripper.gripper_controller(effort=200.0)
    with pytest.raises(AttributeError, match="no public method 'move_to'"):
        arm.move_to([0.0] * 6)
    with pytest.raises(AttributeError, match="no public method 'shutdown'"):
        robot.bot.shutdown()  # G2 had it; G3 uses robot_shutdown()
    with pytest.raises(api.InterbotixAPIMismatch, match="unexpected keyword argument 'timeout'"):
        sys.modules["interbotix_common_modules.common_robot.robot"].robot_shutdown(timeout=1.0)
    assert "arm.move_to" not in fake.names()


def test_unreachable_target_is_refused_counted_and_nothing_is_sent(setup, caplog):
    sim, fake, robot = setup
    robot.reset()
    start = np.array([X_MAX - 1e-5, 0.0, Z])
    move_arm_to(robot, start)  # fully stretched: every step outwards is out of reach
    joints = sim.joints.copy()
    since = len(fake.calls)

    accepted = robot.command(PoseTarget(start + [0.05, 0.0, 0.0], np.array(RPY), gripper_open=False), 0.2)

    assert accepted is False and robot.refusals == 1
    assert [r.getMessage() for r in caplog.records if r.name == "dsrl_real.robots.widowx"] == [
        f"Refused unreachable target xyz={np.round(start + [0.05, 0.0, 0.0], 3).tolist()} rpy={np.round(RPY, 3).tolist()} "
        "(no IK solution even for 1/8 of the step)."]
    calls = new_calls(fake, since)
    attempts = [c for c in calls if c.name == "arm.set_ee_pose_components"]
    assert [round(c.kwargs["x"] - start[0], 6) for c in attempts] == [0.05, 0.025, 0.0125, 0.00625]
    assert all(c.kwargs["execute"] is False for c in attempts)
    assert {c.name for c in calls} == {"arm.get_joint_positions", "arm.get_ee_pose", "arm.set_ee_pose_components"}
    np.testing.assert_array_equal(sim.joints, joints)
    assert not sim.gripper_closed  # the gripper command was not sent either


def test_target_just_beyond_reach_is_clipped_to_a_shorter_step(setup):
    sim, fake, robot = setup
    robot.reset()
    start = np.array([X_MAX - 0.02, 0.0, Z])
    move_arm_to(robot, start)
    since = len(fake.calls)

    accepted = robot.command(PoseTarget(start + [0.05, 0.0, 0.0], np.array(RPY), gripper_open=True), 0.2)

    assert accepted is True and robot.refusals == 0
    assert robot.last_step_fraction == 0.25 and robot.shrunk_steps == 1  # 5 and 2.5 cm are beyond reach
    np.testing.assert_allclose(sim.ee_matrix()[:3, 3], start + [0.0125, 0.0, 0.0], atol=1e-9)
    sent = [c for c in new_calls(fake, since) if c.name == "arm.set_joint_positions"]
    assert len(sent) == 1 and sent[0].kwargs == {"moving_time": 0.2, "accel_time": 0.05, "blocking": False}
    np.testing.assert_allclose(sent[0].args[0], sim.joints, atol=1e-12)


def test_driver_not_running_fails_within_the_timeout_with_one_sentence():
    sim = Tabletop("monkey", seed=0)
    with fake_ix.install(sim, driver_running=False) as fake:
        started = time.monotonic()
        with pytest.raises(RuntimeError) as info:
            WidowXRobot.connect(RobotConfig(kind="widowx", driver_timeout_s=0.5))
        elapsed = time.monotonic() - started
        assert fake.names() == ["bot.__init__"] and fake.bots == []  # still blocked inside the constructor
    message = str(info.value)
    assert message == (
        "The WidowX driver did not answer within 0.5 s; start it with `ros2 launch interbotix_xsarm_control "
        "xsarm_control.launch.py robot_model:=wx250s` (and check the arm is powered and on USB), then run again."
    )
    assert elapsed < 5.0  # the real constructor would wait forever
    # Leaving install() releases the constructor thread instead of leaking a hung thread.
    for thread in [t for t in threading.enumerate() if t.name == "interbotix-connect"]:
        thread.join(5.0)
        assert not thread.is_alive()


def test_a_blocked_constructor_continues_when_the_driver_comes_up():
    sim = Tabletop("monkey", seed=0)
    with fake_ix.install(sim, driver_running=False) as fake:
        timer = threading.Timer(0.05, fake.start_driver)
        timer.start()
        robot = WidowXRobot.connect(RobotConfig(kind="widowx", driver_timeout_s=5.0))
        assert fake.bots == [robot.bot] and fake.names() == ["bot.__init__", "robot_startup"]
        timer.join()


def test_missing_interbotix_modules_give_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "interbotix_common_modules", None)  # as if not installed
    with pytest.raises(ImportError) as info:
        WidowXRobot.connect(CFG)
    message = str(info.value)
    assert "`interbotix_xs_modules`" in message and "install the Interbotix ROS 2 workspace" in message
    assert "source its install/setup.bash" in message


def test_gripper_is_commanded_only_when_open_closed_changes(setup):
    sim, fake, robot = setup
    robot.reset()
    since = len(fake.calls)
    state = robot.state()
    for gripper_open in (True, True, False, False, False, True, True):
        assert robot.command(PoseTarget(state.xyz, state.rpy, gripper_open), 0.2)
    gripper_calls = [(c.name, c.kwargs) for c in new_calls(fake, since)
                     if c.name in ("gripper.grasp", "gripper.release", "gripper.gripper_controller")]
    assert gripper_calls == [("gripper.grasp", {"delay": 0.0}), ("gripper.release", {"delay": 0.0})]
    assert not sim.gripper_closed


def test_state_reads_pose_joints_and_gripper_opening(setup):
    sim, _, robot = setup
    robot.reset()
    state = robot.state()
    np.testing.assert_allclose(state.xyz, START_XYZ, atol=1e-9)
    np.testing.assert_allclose(state.rpy, START_RPY, atol=1e-9)
    np.testing.assert_allclose(state.joints, sim.joints, atol=1e-12)
    assert state.gripper == pytest.approx(1.0)
    assert robot.command(PoseTarget(state.xyz, state.rpy, gripper_open=False), 0.2)
    assert robot.state().gripper == pytest.approx(0.0)  # closed on nothing
    np.testing.assert_allclose(robot.state().rpy, matrix_to_rpy(sim.ee_matrix()[:3, :3]), atol=1e-12)


def test_reset_right_after_fast_commands_is_slow_and_reaches_the_start_pose(setup):
    sim, fake, robot = setup
    robot.reset()
    state = robot.state()
    for _ in range(5):  # to y = 0.2; the stored moving_time is now the 0.2 s control period
        state = robot.state()
        assert robot.command(PoseTarget(state.xyz + [0.0, 0.04, 0.0], state.rpy, True), 0.2)
    # The real limit check uses the stored 0.2 s: the waist would turn 0.67 rad in 0.2 s, too fast.
    assert robot.arm.set_ee_pose_components(x=0.25, y=0.0, z=0.16, roll=0.0, pitch=1.2, yaw=0.0,
                                            moving_time=2.0, execute=False)[1] is False
    since = len(fake.calls)
    robot.reset()  # works because reset sets its own 2 s timing first
    np.testing.assert_allclose(sim.ee_matrix()[:3, 3], START_XYZ, atol=1e-9)
    assert fake.registers[("group", "arm", "Profile_Velocity")] == 2000
    calls = [(c.name, c.kwargs) for c in new_calls(fake, since)]
    assert calls[0] == ("arm.set_trajectory_time", {"moving_time": 2.0, "accel_time": 0.3})
    assert calls[1][0] == "arm.set_ee_pose_components"
    assert {k: calls[1][1][k] for k in ("moving_time", "accel_time", "blocking")} == {
        "moving_time": 2.0, "accel_time": 0.3, "blocking": True}
    assert calls[2] == ("gripper.release", {"delay": 1.0})
    robot.home()
    assert fake.calls_named("arm.go_to_home_pose")[-1].kwargs == {"moving_time": 2.0, "accel_time": 0.3,
                                                                  "blocking": True}
    np.testing.assert_allclose(sim.joints, np.zeros(6))


def test_stop_holds_the_measured_joints(setup):
    sim, fake, robot = setup
    robot.reset()
    joints = sim.joints.copy()
    since = len(fake.calls)
    robot.stop()
    held = [c for c in new_calls(fake, since) if c.name == "arm.set_joint_positions"]
    assert len(held) == 1 and held[0].kwargs == {"blocking": False}
    np.testing.assert_allclose(held[0].args[0], joints)
    np.testing.assert_allclose(sim.joints, joints)


def test_close_goes_to_sleep_torques_off_then_shuts_down_once(setup):
    sim, fake, robot = setup
    robot.reset()
    since = len(fake.calls)
    robot.close()
    robot.close()
    assert [c.name for c in new_calls(fake, since)] == [
        "arm.go_to_sleep_pose", "arm.get_joint_positions", "core.robot_torque_enable", "robot_shutdown"]
    assert fake.calls_named("core.robot_torque_enable")[-1].kwargs == {"cmd_type": "group", "name": "all", "enable": False}
    np.testing.assert_allclose(sim.joints, fake_ix.SLEEP_POSITIONS)
    with pytest.raises(RuntimeError, match="destroyed"):  # the node is gone: no more commands
        robot.bot.arm.go_to_home_pose()


def test_a_sleep_move_that_falls_short_keeps_the_torque_on(setup, caplog):
    sim, fake, robot = setup
    robot.reset()
    robot.arm.go_to_sleep_pose = lambda **kwargs: None  # the move never arrives (a collision, a dead driver)
    since = len(fake.calls)
    robot.close()
    assert "core.robot_torque_enable" not in [c.name for c in new_calls(fake, since)]
    assert [c.name for c in new_calls(fake, since)][-1] == "robot_shutdown"
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warning) == 1 and warning[0].startswith("The arm did not reach its sleep pose")
    assert "its torque stays on so that it cannot drop" in warning[0]


def test_torque_off_on_close_false_leaves_the_torque_on():
    with fake_ix.install(Tabletop("monkey", seed=0)) as fake:
        robot = WidowXRobot.connect(RobotConfig(kind="widowx", driver_timeout_s=5.0, torque_off_on_close=False))
        robot.reset()
        robot.close()
        assert fake.names()[-2:] == ["arm.go_to_sleep_pose", "robot_shutdown"]


def test_alternate_constructor_wraps_an_already_built_bot():
    sim = Tabletop("monkey", seed=0)
    with fake_ix.install(sim) as fake:
        from interbotix_common_modules.common_robot.robot import robot_startup
        from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS

        bot = InterbotixManipulatorXS(robot_model="wx250s", group_name="arm", gripper_name="gripper")
        robot_startup()
        robot = WidowXRobot.from_bot(bot)
        robot.reset()
        np.testing.assert_allclose(robot.state().xyz, [0.25, 0.0, 0.16], atol=1e-9)
        robot.close()
        assert fake.names()[-2:] == ["core.robot_torque_enable", "robot_shutdown"]
    assert "interbotix_xs_modules" not in sys.modules  # install() cleans up


def test_fake_keeps_the_real_quirks(setup):
    sim, fake, robot = setup
    arm = robot.bot.arm
    joints = sim.joints.copy()
    theta, ok = arm.set_ee_pose_components(x=0.9, z=0.2)  # out of reach
    assert ok is False and isinstance(theta, np.ndarray)
    np.testing.assert_array_equal(sim.joints, joints)
    assert arm.set_joint_positions([0.0, 2.5, 0.0, 0.0, 0.0, 0.0]) is False  # shoulder beyond 114 deg
    arm.set_trajectory_time(moving_time=0.1)
    assert arm.set_joint_positions([0.5, 0.0, 0.0, 0.0, 0.0, 0.0], moving_time=5.0) is False  # checked at 0.1 s
    js = robot.bot.core.joint_states
    assert js.name[-3:] == ["gripper", "left_finger", "right_finger"]
    assert js.position[js.name.index("left_finger")] == pytest.approx(0.037)
    from interbotix_xs_modules.xs_robot.arm import InterbotixManipulatorXS

    with pytest.raises(api.InterbotixException, match="global node but one already exists"):
        InterbotixManipulatorXS(robot_model="wx250s")


def test_with_the_rclpy_fake_the_global_node_is_an_rclpy_node_and_shutdown_ends_rclpy_as_upstream():
    from fakes import rclpy_fake

    with rclpy_fake.install() as ros, fake_ix.install(Tabletop("monkey", seed=0), ros=ros) as fake:
        robot = WidowXRobot.connect(CFG)  # nobody called rclpy.init(): create_interbotix_global_node does
        node = fake.global_node
        assert ros.calls_named("init")[0].kwargs == {}
        assert ros.nodes == [node] and (node.get_name(), node.get_namespace()) == ("interbotix_robot_manipulation", "/")
        assert ros.logs[0] == ("interbotix_robot_manipulation", "INFO", "Initialized InterbotixRobotNode!")
        robot.close()
        assert node.destroyed and not ros.ok


def test_factory_builds_the_hardware_env_from_config_with_both_fakes():
    from fakes import realsense as fake_rs

    from dsrl_real.config import CameraConfig
    from dsrl_real.envs.make import build_env

    cfg = load_config(overrides=["robot.kind=widowx", "robot.driver_timeout_s=5"])
    cfg.cameras = [CameraConfig(name="third_person", kind="realsense", serial="111", width=64, height=48)]
    sim = Tabletop("monkey", seed=0)
    with fake_ix.install(sim) as fake, fake_rs.install({"111": np.zeros((480, 640, 3), np.uint8)}):
        env = build_env(cfg, prompt=lambda text: "")
        obs, _ = env.reset(seed=0)
        assert obs["third_person_image"].shape == (48, 64, 3)
        obs, _, _, _, info = env.step(np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
        assert info["refused"] is False
        np.testing.assert_allclose(obs["proprio"][:3], [0.26, 0.0, 0.16], atol=1e-6)
        env.close()
    assert fake.names()[-4:] == ["arm.go_to_sleep_pose", "arm.get_joint_positions", "core.robot_torque_enable", "robot_shutdown"]


def test_hardware_reset_sends_the_arm_home_then_asks_the_person_then_goes_to_start():
    from dsrl_real.envs.make import build_env

    cfg = load_config(overrides=["robot.kind=widowx", "robot.driver_timeout_s=5", "cameras=[]", "policy.image_keys=[]"])
    sim = Tabletop("monkey", seed=0)
    asked = []
    with fake_ix.install(sim) as fake:
        env = build_env(cfg, prompt=lambda text: asked.append((text, fake.names()[-1])) or "")
        since = len(fake.calls)
        env.reset(seed=0)
        after = [c.name for c in new_calls(fake, since)]
        env.close()
    assert len(asked) == 1
    text, last_call_before_prompt = asked[0]
    assert text == ("Reset the scene for: 'pick up the brown monkey and put it on the yellow towel'. "
                    "Press Enter when the robot may start. ")
    assert last_call_before_prompt == "arm.go_to_home_pose"
    assert after.index("arm.go_to_home_pose") < after.index("arm.set_ee_pose_components")  # start pose after
    assert env.observation_space.spaces.keys() == {"proprio"}  # no simulator truth on hardware
