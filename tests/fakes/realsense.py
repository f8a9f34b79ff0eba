"""A fake `pyrealsense2` module with the real names, signatures and error messages (librealsense 2.5x).

    with install(devices={"123456": lambda: renderer.render(sim, "third_person")}) as fake:
        import pyrealsense2 as rs   # this module
        ...

A device's frame source is an HxWx3 uint8 image or a callable returning one; it is resized to the
resolution of the enabled color stream. A callable may return None (no frame: `wait_for_frames`
times out with the real message) or raise (the error reaches the caller, like a disconnect).
Frames are paced at the stream's fps. Only what a color-only RGB client uses is implemented.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import threading
import time
from typing import Callable, Union

import numpy as np
from PIL import Image

from fakes.modules import swapped

FrameSource = Union[np.ndarray, Callable[[], "np.ndarray | None"]]

# Color modes a D435/D415 offers (width, height) x fps; anything else: "Couldn't resolve requests".
COLOR_RESOLUTIONS = {(320, 180), (320, 240), (424, 240), (640, 360), (640, 480), (848, 480), (960, 540),
                     (1280, 720), (1920, 1080)}
COLOR_FPS = {6, 15, 30, 60}


class stream(enum.Enum):
    any = 0
    depth = 1
    color = 2
    infrared = 3
    fisheye = 4
    gyro = 5
    accel = 6


class format(enum.Enum):  # noqa: A001 - the real module shadows the builtin too
    any = 0
    z16 = 1
    rgb8 = 5
    bgr8 = 6
    rgba8 = 7
    bgra8 = 8
    y8 = 9


class camera_info(enum.Enum):
    name = 0
    serial_number = 1
    firmware_version = 2
    product_id = 7
    usb_type_descriptor = 12
    product_line = 13


class device:
    def __init__(self, serial: str, source: FrameSource):
        self._serial, self._source = serial, source

    def get_info(self, info: camera_info) -> str:
        values = {camera_info.serial_number: self._serial, camera_info.name: "Intel RealSense D435",
                  camera_info.product_line: "D400", camera_info.usb_type_descriptor: "3.2"}
        if info not in values:
            raise RuntimeError(f"object doesn't support option #{info.value}")
        return values[info]

    def supports(self, info: camera_info) -> bool:
        return info in (camera_info.serial_number, camera_info.name, camera_info.product_line,
                        camera_info.usb_type_descriptor)

    def __repr__(self) -> str:
        return f"<pyrealsense2.device: Intel RealSense D435 (S/N: {self._serial})>"


class device_list:
    def __init__(self, devices: list[device]):
        self._devices = list(devices)

    def __len__(self) -> int:
        return len(self._devices)

    def size(self) -> int:
        return len(self._devices)

    def __getitem__(self, i):
        return self._devices[i]

    def __iter__(self):
        return iter(self._devices)

    def front(self) -> device:
        return self._devices[0]

    def back(self) -> device:
        return self._devices[-1]


class context:
    def __init__(self):
        self._fake = _active()

    def query_devices(self, product_line: int | None = None) -> device_list:
        return device_list([device(s, src) for s, src in self._fake.devices.items()])

    @property
    def devices(self) -> device_list:
        return self.query_devices()


class config:
    def __init__(self):
        self._serial: str | None = None
        self._streams: dict[stream, tuple] = {}

    def enable_device(self, serial: str) -> None:
        self._serial = serial

    def enable_stream(self, stream_type: stream, width: int = 0, height: int = 0, format: format = format.any,
                      framerate: int = 0) -> None:
        """Only the (stream_type, width, height, format, framerate) overload."""
        self._streams[stream_type] = (int(width), int(height), format, int(framerate))

    def disable_all_streams(self) -> None:
        self._streams.clear()


class frame:
    def __init__(self, image: np.ndarray | None = None, timestamp_ms: float = 0.0, number: int = 0):
        self._image, self._timestamp, self._number = image, timestamp_ms, number

    def __bool__(self) -> bool:
        return self._image is not None

    def get_data(self) -> memoryview:
        """A read-only memoryview (the real BufData also exposes the buffer protocol)."""
        if self._image is None:
            raise RuntimeError("null pointer passed for argument \"frame_ref\"")
        return memoryview(self._image)

    @property
    def data(self) -> memoryview:
        return self.get_data()

    def get_timestamp(self) -> float:
        return self._timestamp

    @property
    def timestamp(self) -> float:
        return self._timestamp

    def get_frame_number(self) -> int:
        return self._number

    @property
    def frame_number(self) -> int:
        return self._number

    def get_data_size(self) -> int:
        return 0 if self._image is None else self._image.nbytes


class video_frame(frame):
    def get_width(self) -> int:
        return self._image.shape[1]

    def get_height(self) -> int:
        return self._image.shape[0]

    def get_bytes_per_pixel(self) -> int:
        return 3

    def get_stride_in_bytes(self) -> int:
        return self._image.shape[1] * 3


class composite_frame(frame):
    def __init__(self, color: video_frame | None = None):
        super().__init__()
        self._color = color
        if color is not None:
            self._image, self._timestamp, self._number = color._image, color._timestamp, color._number

    def __bool__(self) -> bool:
        return self._color is not None

    def size(self) -> int:
        return int(self._color is not None)

    def __len__(self) -> int:
        return self.size()

    def get_color_frame(self, index: int = 0) -> video_frame:
        return self._color if self._color is not None else video_frame()


class pipeline_profile:
    def __init__(self, dev: device):
        self._device = dev

    def get_device(self) -> device:
        return self._device


class pipeline:
    def __init__(self, ctx: context | None = None):
        self._fake = _active()
        self._started = False
        self._stopped = threading.Event()
        self._fake.pipelines.append(self)
        self._device: device | None = None
        self._size = (640, 480)
        self._fps = 30
        self._format = format.rgb8
        self._t0 = 0.0
        self._last_k = -1
        self.start_count = 0

    @property
    def started(self) -> bool:
        return self._started

    def start(self, config: config | None = None) -> pipeline_profile:
        if self._started:
            raise RuntimeError("start() cannot be called before stop()")
        config = config or globals()["config"]()
        devices = self._fake.devices
        serial = config._serial if config._serial is not None else next(iter(devices), None)
        if serial not in devices:
            raise RuntimeError("No device connected")  # the real one says so after ~15 s of retries
        width, height, fmt, fps = config._streams.get(stream.color, (640, 480, format.rgb8, 30))
        if (width, height) not in COLOR_RESOLUTIONS or fps not in COLOR_FPS or fmt not in (format.rgb8, format.bgr8):
            raise RuntimeError("Couldn't resolve requests")
        if set(config._streams) - {stream.color}:
            raise NotImplementedError("The fake pyrealsense2 streams color only.")
        self._device, self._size, self._fps, self._format = device(serial, devices[serial]), (width, height), fps, fmt
        self._started, self._last_k, self._t0 = True, -1, time.monotonic()
        self._stopped.clear()
        self.start_count += 1
        return pipeline_profile(self._device)

    def stop(self) -> None:
        if not self._started:
            raise RuntimeError("stop() cannot be called before start()")
        self._started = False
        self._stopped.set()

    def _capture(self, k: int) -> composite_frame:
        """Frame k of the stream (produced at t0 + k / fps), or an empty frameset if the source has none."""
        source = self._device._source
        image = source() if callable(source) else source
        if image is None:
            return composite_frame()
        image = np.asarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"A fake camera frame must be HxWx3 uint8, got shape {image.shape}.")
        if (image.shape[1], image.shape[0]) != self._size:
            image = np.asarray(Image.fromarray(image).resize(self._size, Image.BILINEAR))
        if self._format == format.bgr8:
            image = image[..., ::-1]
        image = np.ascontiguousarray(image)
        image.setflags(write=False)
        return composite_frame(video_frame(image, k * 1e3 / self._fps, k + 1))

    def _latest_index(self) -> int:
        return int((time.monotonic() - self._t0) * self._fps)

    def wait_for_frames(self, timeout_ms: int = 5000) -> composite_frame:
        """The latest undelivered frame: at once if one was produced since the last call, else the next one."""
        if not self._started:
            raise RuntimeError("wait_for_frames cannot be called before start()")
        deadline = time.monotonic() + timeout_ms / 1e3
        while True:
            k = self._latest_index()
            if k > self._last_k:
                self._last_k = k
                frames = self._capture(k)
                if frames:
                    self._fake._bump("frames_served")
                    return frames
                continue
            due = self._t0 + (self._last_k + 1) / self._fps
            if self._stopped.wait(max(0.0, min(due, deadline) - time.monotonic())) or due > deadline:
                self._fake._bump("timeouts")
                raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")

    def poll_for_frames(self) -> composite_frame:
        if not self._started:
            raise RuntimeError("poll_for_frames cannot be called before start()")
        k = self._latest_index()
        if k <= self._last_k:
            return composite_frame()
        self._last_k = k
        return self._capture(k)

    def try_wait_for_frames(self, timeout_ms: int = 5000) -> tuple[bool, composite_frame]:
        try:
            return True, self.wait_for_frames(timeout_ms)
        except RuntimeError:
            return False, composite_frame()


class FakeRealSense:
    """What one `install()` holds: the connected devices and every pipeline created."""

    def __init__(self, devices: dict[str, FrameSource]):
        self.devices = dict(devices)
        self.pipelines: list[pipeline] = []
        self.timeouts = 0  # wait_for_frames calls that raised "Frame didn't arrive"
        self.frames_served = 0  # framesets returned by wait_for_frames
        self._cond = threading.Condition()

    def _bump(self, counter: str) -> None:
        with self._cond:
            setattr(self, counter, getattr(self, counter) + 1)
            self._cond.notify_all()

    def wait_for_timeouts(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until `n` wait_for_frames timeouts have happened (for tests: no polling, no sleeps)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.timeouts >= n, timeout_s)

    def wait_for_frames_served(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until wait_for_frames has returned `n` framesets."""
        with self._cond:
            return self._cond.wait_for(lambda: self.frames_served >= n, timeout_s)


_ACTIVE: list[FakeRealSense] = []


def _active() -> FakeRealSense:
    if not _ACTIVE:
        raise RuntimeError("The fake pyrealsense2 is used outside its install() block.")
    return _ACTIVE[-1]


@contextlib.contextmanager
def install(devices: dict[str, FrameSource] | None = None):
    """Make `import pyrealsense2` give this fake, with `devices` ({serial: frame source}) connected."""
    fake = FakeRealSense(devices or {})
    with swapped({"pyrealsense2": sys.modules[__name__]}):
        _ACTIVE.append(fake)
        try:
            yield fake
        finally:
            _ACTIVE.remove(fake)
            for p in fake.pipelines:
                if p._started:
                    p.stop()

