"""RealSenseCamera against the real pyrealsense2 (no camera attached) and against the fake module."""

import os
import sys
import threading
import time

import numpy as np
import pytest
from fakes import realsense as fake_rs

from dsrl_real.robots.base import Camera
from dsrl_real.robots.realsense import RealSenseCamera


def solid(value: int, shape=(480, 640)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


@pytest.fixture
def real_rs():
    assert "pyrealsense2" not in sys.modules or sys.modules["pyrealsense2"] is not fake_rs
    try:
        import pyrealsense2 as rs
    except ImportError as err:  # CI installs libusb; there a missing library is a failure, not a skip
        if os.environ.get("CI"):
            pytest.fail(f"pyrealsense2 must import in CI: {err}")
        pytest.skip(f"pyrealsense2 (or its libusb) is not installed: {err}")
    if len(rs.context().query_devices()):
        pytest.skip("a RealSense camera is connected")
    return rs


def test_real_pyrealsense2_without_camera_fails_fast_with_one_sentence(real_rs, monkeypatch):
    # pipeline.start() would take ~15 s to fail: the serial must be checked before any pipeline exists.
    monkeypatch.setattr(real_rs, "pipeline", lambda *a, **k: pytest.fail("a pipeline was created"))
    with pytest.raises(RuntimeError) as info:
        RealSenseCamera("third_person", serial="123456")
    assert str(info.value) == (
        "Camera 'third_person' expects the RealSense with serial 123456, but none is connected; plug it in "
        "(USB 3) or set the camera's serial to one that `rs-enumerate-devices -s` lists."
    )


def test_real_pyrealsense2_without_camera_and_without_serial(real_rs):
    with pytest.raises(RuntimeError, match="has no serial set and needs exactly one connected RealSense, but none"):
        RealSenseCamera("wrist", serial="")


def test_frames_are_read_at_the_requested_resolution():
    with fake_rs.install({"111": solid(200)}) as fake:
        cam = RealSenseCamera("third_person", serial="111", width=96, height=64, timeout_s=2.0)
        assert isinstance(cam, Camera)
        frame = cam.read()
        cam.close()
    assert frame.image.shape == (64, 96, 3) and frame.image.dtype == np.uint8
    assert np.all(frame.image == 200)
    assert frame.timestamp_s <= time.monotonic()
    assert fake.pipelines[0]._size == (640, 480)  # streamed at a supported mode, resized by us


def test_read_returns_the_latest_frame_not_a_queued_one():
    sixth_requested, release = threading.Event(), threading.Event()
    count = [0]

    def source():
        count[0] += 1
        if count[0] == 6:  # frame 5 has been stored by the reader; hold frame 6 back
            sixth_requested.set()
            release.wait(5.0)
        return solid(count[0], (48, 64))

    with fake_rs.install({"111": source}):
        cam = RealSenseCamera("wrist", serial="111", width=64, height=48, timeout_s=2.0)
        assert sixth_requested.wait(5.0)
        first, second = cam.read(), cam.read()
        release.set()
        cam.close()
    assert np.all(first.image == 5) and second is first


def test_reader_timeout_surfaces_as_a_clear_error_on_the_next_read():
    with fake_rs.install({"222": lambda: None}) as fake:  # the camera delivers nothing
        cam = RealSenseCamera("wrist", serial="222", timeout_s=0.05)
        assert fake.wait_for_timeouts(2)  # the first error is stored before the second wait times out
        with pytest.raises(RuntimeError) as info:
            cam.read()
        cam.close()
    assert str(info.value) == (
        "Camera 'wrist' (RealSense 222) failed: Frame didn't arrive within 50; check its USB cable and that no "
        "other program uses it."
    )


def test_reader_errors_are_not_swallowed_and_reading_recovers():
    state = {"fail": True}

    def source():
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("Device disconnected. Failed to reconnect")
        return solid(7)

    with fake_rs.install({"222": source}) as fake:
        cam = RealSenseCamera("wrist", serial="222", timeout_s=2.0)
        assert fake.wait_for_frames_served(2)  # so the good frame 1 is stored after the error
        with pytest.raises(RuntimeError, match="failed: Device disconnected"):
            cam.read()
        assert np.all(cam.read().image == 7)
        cam.close()


def test_wrong_serial_lists_the_connected_serials():
    with fake_rs.install({"111": solid(1), "222": solid(2)}) as fake:
        with pytest.raises(RuntimeError) as info:
            RealSenseCamera("third_person", serial="333")
    assert str(info.value).startswith(
        "Camera 'third_person' expects the RealSense with serial 333, but found serial(s) 111, 222; ")
    assert fake.pipelines == []  # failed before any pipeline was created


def test_empty_serial_takes_the_only_camera_and_refuses_to_guess_between_two():
    with fake_rs.install({"111": solid(1)}):
        cam = RealSenseCamera("third_person", serial="")
        assert cam.serial == "111"
        cam.close()
    with fake_rs.install({"111": solid(1), "222": solid(2)}):
        with pytest.raises(RuntimeError, match="no serial set and needs exactly one .* found serial\\(s\\) 111, 222"):
            RealSenseCamera("third_person", serial="")


def test_unsupported_fps_fails_with_a_hint():
    with fake_rs.install({"111": solid(1)}):
        with pytest.raises(RuntimeError, match="Couldn't resolve requests\\); use fps 6, 15, 30 or 60"):
            RealSenseCamera("third_person", serial="111", fps=25)


def test_close_stops_the_reader_and_the_pipeline():
    with fake_rs.install({"111": solid(9)}) as fake:
        cam = RealSenseCamera("third_person", serial="111", timeout_s=2.0)
        cam.read()
        cam.close()
        cam.close()  # idempotent
        pipe = fake.pipelines[0]
        assert not pipe.started and pipe.start_count == 1
        assert not cam._thread.is_alive()
        with pytest.raises(RuntimeError, match="wait_for_frames cannot be called before start"):
            pipe.wait_for_frames(10)


def test_missing_pyrealsense2_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(ImportError, match="need the package `pyrealsense2`; install it with `pip install pyrealsense2`"):
        RealSenseCamera("third_person", serial="111")


def test_fake_renders_the_simulator():
    render = pytest.importorskip("dsrl_real.sim.render")
    from dsrl_real.sim.tabletop import Tabletop

    sim, renderer = Tabletop("monkey", seed=0), render.Renderer(128, 128)
    with fake_rs.install({"111": lambda: renderer.render(sim, "third_person")}):
        cam = RealSenseCamera("third_person", serial="111", width=128, height=128, timeout_s=2.0)
        image = cam.read().image
        cam.close()
    expected = renderer.render(sim, "third_person").astype(float)
    assert image.shape == (128, 128, 3) and image.std() > 5
    assert np.abs(image.astype(float) - expected).mean() < 20  # up- then down-sampled, same picture
