"""RosTopicCamera against the fake rclpy (real signatures and message fields), and stale frames in the env."""

import re

import numpy as np
import pytest
from conftest import STATE
from fakes import rclpy_fake
from fakes import realsense as fake_rs

from dsrl_real.config import load_config
from dsrl_real.envs.make import safety_limits
from dsrl_real.envs.robot_env import RobotEnv, StaleFrameError
from dsrl_real.robots import ros_runtime as ros
from dsrl_real.robots.base import Camera, PoseTarget, RobotState
from dsrl_real.robots.manual import ManualScene
from dsrl_real.robots.ros_camera import RosTopicCamera, image_to_rgb
from dsrl_real.tasks import TaskSpec

TOPIC = "/camera/camera/color/image_raw"


def pattern(height=48, width=64) -> np.ndarray:
    """An image whose every pixel and channel differs, so any swap or shift shows."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(3 * x + y) % 256, (5 * y + x) % 256, (x * y + 7) % 256], axis=2).astype(np.uint8)


@pytest.fixture
def graph():
    with rclpy_fake.install() as fake:
        runtime = ros.RosRuntime.start()
        yield fake, runtime.node
        runtime.close()


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("row_padding", [0, 5])
def test_colour_encodings_and_padded_rows_become_the_same_rgb_image(encoding, row_padding):
    with rclpy_fake.install():
        msg = rclpy_fake.image_message(pattern(), encoding, row_padding)
    assert msg.step == 64 * rclpy_fake.ENCODING_CHANNELS[encoding] + row_padding
    np.testing.assert_array_equal(image_to_rgb(msg), pattern())


def test_mono8_is_replicated_to_three_channels():
    with rclpy_fake.install():
        msg = rclpy_fake.image_message(pattern(), "mono8")
    rgb = image_to_rgb(msg)
    assert rgb.shape == (48, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], pattern().mean(axis=2).astype(np.uint8))
    assert np.all(rgb[..., 0] == rgb[..., 2])


def test_frames_arrive_through_the_spinning_node_and_are_resized(graph):
    fake, node = graph
    rclpy_fake.FakeImageTopic(fake, TOPIC, pattern(96, 128), encoding="bgr8").start()
    cam = RosTopicCamera("exterior", TOPIC, width=32, height=24, timeout_s=5.0, node=node)
    assert isinstance(cam, Camera)
    frame = cam.read()
    assert frame.image.shape == (24, 32, 3) and frame.image.dtype == np.uint8
    expected = np.asarray(__import__("PIL.Image").Image.fromarray(pattern(96, 128)).resize((32, 24), 2))  # bilinear
    np.testing.assert_array_equal(frame.image, expected)
    subscribe = fake.calls_named("Node.create_subscription")[-1]
    assert subscribe.args[1] == TOPIC and subscribe.args[3].reliability == rclpy_fake.ReliabilityPolicy.BEST_EFFORT
    cam.close()
    assert fake.count_subscribers(TOPIC) == 0


def test_read_gives_the_newest_frame(graph):
    fake, node = graph
    values = iter(range(1, 10**6))
    topic = rclpy_fake.FakeImageTopic(fake, TOPIC, lambda: np.full((8, 8, 3), next(values) % 256, np.uint8)).start()
    cam = RosTopicCamera("wrist", TOPIC, width=8, height=8, timeout_s=5.0, node=node)
    first = cam.read()
    topic.wait_ticks(3)
    assert fake.wait_for(lambda: cam._msg is not None and cam._msg.data[0] > first.image[0, 0, 0] + 1)
    second = cam.read()
    assert second.image[0, 0, 0] > first.image[0, 0, 0] and second.timestamp_s > first.timestamp_s


def test_a_best_effort_publisher_is_heard_too(graph):
    fake, node = graph
    rclpy_fake.FakeImageTopic(fake, TOPIC, pattern(), qos=rclpy_fake.qos_profile_sensor_data).start()
    assert RosTopicCamera("c", TOPIC, 64, 48, timeout_s=5.0, node=node).read().image.shape == (48, 64, 3)


def test_no_publisher_is_one_sentence_naming_camera_and_topic(graph):
    _, node = graph
    cam = RosTopicCamera("exterior_left", "/exterior_left/color/image_raw", timeout_s=0.1, node=node)
    with pytest.raises(RuntimeError) as info:
        cam.read()
    assert str(info.value) == (
        "Camera 'exterior_left' (ROS topic /exterior_left/color/image_raw) delivered no frame within 0.1 s; check that "
        "its driver publishes (`ros2 topic hz /exterior_left/color/image_raw`) and that the topic name is right.")


def test_an_unreadable_encoding_is_one_sentence(graph):
    fake, node = graph
    rclpy_fake.FakeImageTopic(fake, TOPIC, pattern(), encoding="16UC1").start()
    cam = RosTopicCamera("depth", TOPIC, timeout_s=5.0, node=node)
    with pytest.raises(RuntimeError, match=re.escape(
            "Camera 'depth' (ROS topic /camera/camera/color/image_raw) sent an image we cannot read: encoding '16UC1' "
            "is not supported (use one of rgb8, bgr8, rgba8, bgra8, mono8).")):
        cam.read()


def test_a_short_image_buffer_is_refused():
    with rclpy_fake.install():
        msg = rclpy_fake.image_message(pattern(), "rgb8")
        msg.data = bytes(100)
    with pytest.raises(ValueError, match="a 64x48 rgb8 image needs step >= 192 and 9216 bytes, got step 192 and 100 bytes"):
        image_to_rgb(msg)


# ---- stale frames stop the episode ----------------------------------------------------------------
class RecordingRobot:
    """A Robot that stays where it is told and records stop() calls."""

    def __init__(self):
        self.stops, self.xyz = 0, np.array([0.25, 0.0, 0.16])

    def reset(self): ...
    def home(self): ...

    def state(self):
        return RobotState(self.xyz.copy(), np.array([0.0, 1.2, 0.0]), 1.0)

    def command(self, target: PoseTarget, duration_s: float) -> bool:
        self.xyz = np.asarray(target.xyz)
        return True

    def stop(self):
        self.stops += 1

    def close(self): ...


def env_with(camera, max_age: float) -> tuple[RobotEnv, RecordingRobot]:
    robot = RecordingRobot()
    task = TaskSpec("t", "do it", ("do it",), max_steps=1000)
    env = RobotEnv(robot, [camera], ManualScene(task, prompt=lambda text: ""), task, safety_limits(load_config()),
                   control_hz=50.0, real_time=True, max_frame_age_s=max_age)
    return env, robot


def step_until_stale(env) -> StaleFrameError:
    for _ in range(1500):  # 30 s at 50 Hz: far more than a frame needs to get older than the 1 s bound on a busy machine
        try:
            env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        except StaleFrameError as err:
            return err
    pytest.fail("the frame never went stale")


def test_a_stalled_image_topic_stops_the_arm_and_ends_the_episode(graph):
    fake, node = graph
    topic = rclpy_fake.FakeImageTopic(fake, TOPIC, pattern()).start()
    env, robot = env_with(RosTopicCamera("exterior", TOPIC, 64, 48, timeout_s=5.0, node=node), max_age=1.0)
    env.reset(seed=0)
    env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))  # fresh frames: fine
    assert robot.stops == 0
    topic.pause()
    err = step_until_stale(env)
    assert re.fullmatch(
        r"Camera 'exterior' \(ROS topic /camera/camera/color/image_raw\) delivered a frame \d+\.\d\d s old, over the "
        r"1 s limit \(env\.max_frame_age_s\), so the arm was stopped and the episode ended; check the camera's "
        r"cable and driver, then resume the run\.", str(err))
    assert float(str(err).split("frame ")[1].split(" s")[0]) >= 1.0  # printed to 2 decimals
    assert robot.stops == 1
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))


def test_a_stalled_realsense_names_its_serial():
    frames = {"n": 0}

    def source():
        frames["n"] += 1
        return pattern(480, 640) if frames["n"] <= 2 else None  # then the camera delivers nothing

    with fake_rs.install({"111": source}):
        from dsrl_real.robots.realsense import RealSenseCamera

        env, robot = env_with(RealSenseCamera("wrist", serial="111", width=64, height=48, timeout_s=5.0), max_age=1.0)
        env.reset(seed=0)
        err = step_until_stale(env)
        env.close()
    assert str(err).startswith("Camera 'wrist' (RealSense 111) delivered a frame ")
    assert robot.stops == 1


def test_simulated_envs_do_not_check_frame_age():
    from dsrl_real.envs.make import build_env

    env = build_env(load_config(overrides=[*STATE]))
    assert env.max_frame_age_s is None


def test_without_a_node_the_process_node_is_started_once_and_shared():
    with rclpy_fake.install() as fake:
        rclpy_fake.FakeImageTopic(fake, TOPIC, pattern()).start()
        try:
            first = RosTopicCamera("a", TOPIC, 64, 48, timeout_s=5.0)
            second = RosTopicCamera("b", TOPIC, 64, 48, timeout_s=5.0)
            assert first.node is second.node and fake.calls_named("Node.__init__")[0].args == ("dsrl_real",)
            assert fake.calls_named("init")[0].kwargs["signal_handler_options"] == rclpy_fake.SignalHandlerOptions.NO
            assert first.read().image.shape == second.read().image.shape == (48, 64, 3)
        finally:
            ros.current_runtime().close()
            ros.set_runtime(None)
    assert fake.names()[-1] == "try_shutdown" and fake.shut_down
