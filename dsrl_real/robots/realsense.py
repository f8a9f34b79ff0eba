"""An Intel RealSense color camera through `pyrealsense2`: the `Camera` protocol.

A background thread keeps the latest frame, so `read()` never waits for the sensor in the control
loop and always gets the newest image. Errors of that thread are raised by the next `read()`.
The device is looked up by serial number before the pipeline starts: `pipeline.start()` with a
missing device takes about 15 s to fail and only says "No device connected".
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image

from .base import Frame

STREAM_WIDTH, STREAM_HEIGHT = 640, 480  # a color mode every D400 camera offers at 6/15/30/60 fps


def _import_pyrealsense2():
    try:
        import pyrealsense2 as rs
    except ImportError as err:
        if "libusb" in str(err):
            raise ImportError(
                f"pyrealsense2 is installed but cannot load libusb ({err}); install it with "
                "`sudo apt install libusb-1.0-0`."
            ) from err
        raise ImportError(
            "RealSense cameras need the package `pyrealsense2`; install it with `pip install pyrealsense2` "
            "(or `pip install dsrl_real[realsense]`)."
        ) from err
    return rs


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return np.array(image, dtype=np.uint8)  # a copy: the frame's buffer is reused by librealsense
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((width, height), Image.BILINEAR))


class RealSenseCamera:
    def __init__(self, name: str, serial: str, width: int = 128, height: int = 128, fps: int = 30,
                 timeout_s: float = 1.0):
        rs = _import_pyrealsense2()
        self.name, self.width, self.height, self.fps, self.timeout_s = name, width, height, fps, timeout_s
        self.serial = self._find_device(rs, name, str(serial or ""))
        self.source = f"RealSense {self.serial}"  # named in error messages (e.g. a stale frame)
        config = rs.config()
        config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, STREAM_WIDTH, STREAM_HEIGHT, rs.format.rgb8, fps)
        self._pipeline = rs.pipeline()
        try:
            self._pipeline.start(config)
        except RuntimeError as err:
            raise RuntimeError(
                f"Camera '{name}' (RealSense {self.serial}) could not start a {STREAM_WIDTH}x{STREAM_HEIGHT} rgb8 "
                f"stream at {fps} fps ({err}); use fps 6, 15, 30 or 60 and make sure no other program uses it."
            ) from err
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"realsense-{name}", daemon=True)
        self._thread.start()

    @staticmethod
    def _find_device(rs, name: str, serial: str) -> str:
        found = [dev.get_info(rs.camera_info.serial_number) for dev in rs.context().query_devices()]
        listing = "none is connected" if not found else f"found serial(s) {', '.join(found)}"
        if serial:
            if serial not in found:
                raise RuntimeError(
                    f"Camera '{name}' expects the RealSense with serial {serial}, but {listing}; plug it in "
                    "(USB 3) or set the camera's serial to one that `rs-enumerate-devices -s` lists."
                )
            return serial
        if len(found) != 1:
            raise RuntimeError(
                f"Camera '{name}' has no serial set and needs exactly one connected RealSense, but {listing}; "
                "connect one or set the camera's serial."
            )
        return found[0]

    def _run(self) -> None:
        timeout_ms = max(1, int(self.timeout_s * 1000))
        while not self._stop.is_set():
            try:
                frames = self._pipeline.wait_for_frames(timeout_ms)
                color = frames.get_color_frame()
                if not color:
                    continue
                stamp = time.monotonic()
                frame = Frame(_resize(np.asanyarray(color.get_data()), self.width, self.height), stamp)
            except Exception as err:  # noqa: BLE001 - handed to the next read()
                if self._stop.is_set():
                    return
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                self._stop.wait(0.05)  # do not spin on an error that repeats at once (e.g. a disconnect)
                continue
            with self._cond:
                self._latest = frame  # an earlier error stays until a read() has reported it
                self._cond.notify_all()

    def read(self) -> Frame:
        """The newest frame no older than `timeout_s`, waiting at most `timeout_s` for one."""
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while True:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise RuntimeError(
                        f"Camera '{self.name}' (RealSense {self.serial}) failed: {err}; check its USB cable "
                        "and that no other program uses it."
                    ) from err
                now = time.monotonic()
                if self._latest is not None and now - self._latest.timestamp_s <= self.timeout_s:
                    return self._latest
                if now >= deadline or not self._thread.is_alive():
                    raise RuntimeError(
                        f"Camera '{self.name}' (RealSense {self.serial}) delivered no frame within "
                        f"{self.timeout_s:g} s; check that it is connected and not used by another program."
                    )
                self._cond.wait(deadline - now)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(self.timeout_s + 1.0)  # wait_for_frames returns within timeout_s
        try:
            self._pipeline.stop()
        except RuntimeError:
            pass  # already stopped
