"""A camera whose frames come from a ROS 2 image topic (sensor_msgs/Image): the `Camera` protocol.

Any driver that publishes raw images works, e.g. realsense2_camera's `/camera/camera/color/image_raw`
or a ZED's `.../rgb/image_rect_color` (bgra8). The subscription keeps only the newest message;
`read()` converts it to an HxWx3 uint8 RGB image at the configured size. A frame is stamped with
its arrival time (time.monotonic), the same clock the RealSense reader uses, so the environment's
staleness check (env.max_frame_age_s) treats both kinds alike.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .base import Frame
from .realsense import _resize
from .ros_runtime import import_messages, import_rclpy, shared_node

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def image_to_rgb(msg) -> np.ndarray:
    """An HxWx3 uint8 RGB array from a sensor_msgs/Image in rgb8, bgr8, rgba8, bgra8 or mono8.

    Rows may be padded (`step` > width x channels); a ValueError names what does not fit.
    """
    encoding = msg.encoding.lower()
    if encoding not in CHANNELS:
        raise ValueError(f"encoding '{msg.encoding}' is not supported (use one of {', '.join(CHANNELS)})")
    channels, height, width, step = CHANNELS[encoding], int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step < width * channels or data.size < step * height:
        raise ValueError(f"a {width}x{height} {encoding} image needs step >= {width * channels} and "
                         f"{step * height} bytes, got step {step} and {data.size} bytes")
    pixels = data[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


class RosTopicCamera:
    def __init__(self, name: str, topic: str, width: int = 128, height: int = 128, timeout_s: float = 1.0, node=None):
        """Subscribe to `topic` on a spinning node (the process's shared one by default)."""
        import_rclpy()
        from rclpy.qos import qos_profile_sensor_data

        (Image,) = import_messages("sensor_msgs.msg", "Image")
        self.name, self.topic, self.width, self.height, self.timeout_s = name, topic, width, height, timeout_s
        self.source = f"ROS topic {topic}"
        self.node = node if node is not None else shared_node()
        self._cond = threading.Condition()
        self._msg = None
        self._received_s = 0.0
        self._frame: Frame | None = None  # the converted newest message, kept until a newer one arrives
        # Best-effort matches reliable and best-effort publishers alike; depth 5, only the newest is used.
        self._subscription = self.node.create_subscription(Image, topic, self._on_image, qos_profile_sensor_data)

    def _on_image(self, msg) -> None:
        with self._cond:
            self._msg, self._received_s, self._frame = msg, time.monotonic(), None
            self._cond.notify_all()

    def read(self) -> Frame:
        """The newest frame; waits at most `timeout_s` for the first one. Its age is the caller's to judge."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._msg is not None, self.timeout_s):
                raise RuntimeError(
                    f"Camera '{self.name}' ({self.source}) delivered no frame within {self.timeout_s:g} s; check that "
                    f"its driver publishes (`ros2 topic hz {self.topic}`) and that the topic name is right."
                )
            if self._frame is None:
                try:
                    image = image_to_rgb(self._msg)
                except ValueError as err:
                    raise RuntimeError(f"Camera '{self.name}' ({self.source}) sent an image we cannot read: {err}.") from err
                self._frame = Frame(_resize(image, self.width, self.height), self._received_s)
            return self._frame

    def close(self) -> None:
        if self._subscription is None:
            return
        subscription, self._subscription = self._subscription, None
        try:
            self.node.destroy_subscription(subscription)
        except Exception:  # noqa: BLE001 - ROS may already be down
            pass
