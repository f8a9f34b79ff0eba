"""Camera videos: H.264 in mp4, encoded frame by frame while the episode runs.

During the episode a camera's frames go to a fragmented mp4 (a fragment per second, each packet
flushed to the OS), so a crash leaves every completed fragment decodable. Sealing remuxes it
(no re-encode, a few ms) into a regular mp4 under the final name, which every reader handles.
Encoding can run on a background thread behind a bounded queue (`FrameWorker`), so a control
loop never waits on the encoder unless it falls a whole queue behind.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .layout import RecordingError

CODEC = "h264"


class VideoStream:
    """One camera of one episode; the file opens at the first frame (its size is known then)."""

    def __init__(self, path: Path, fps: float, crf: int = 23):
        self.path, self.fps, self.crf = path, fps, crf
        self.frames = 0
        self.shape: tuple[int, int] | None = None
        self._container = self._stream = None

    def _open(self, height: int, width: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w", format="mp4",
                                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        self._time_base = 1 / rate
        stream.width, stream.height = width + width % 2, height + height % 2  # yuv420p needs even sizes
        stream.pix_fmt = "yuv420p"
        gop = max(1, round(self.fps))  # a keyframe, hence a readable fragment, every second
        stream.options = {"g": str(gop), "tune": "zerolatency", "preset": "veryfast", "crf": str(self.crf)}
        stream.thread_count = 1  # small frames at 5-15 Hz: one thread suffices, and the cores belong to the control loop
        self._stream, self.shape = stream, (height, width)

    def write(self, frame: np.ndarray) -> None:
        import av

        if self._container is None:
            self._open(*frame.shape[:2])
        if frame.shape[:2] != self.shape:
            raise RecordingError(f"Camera frames changed size from {self.shape} to {frame.shape[:2]} within an episode.")
        if frame.shape[0] % 2 or frame.shape[1] % 2:
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        image = av.VideoFrame.from_ndarray(frame, format="rgb24")
        # Frame k at exactly k / fps: LeRobot finds a row's frame by its timestamp, within 1e-4 s.
        image.pts, image.time_base = self.frames, self._time_base
        for packet in self._stream.encode(image):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None


def check_frame(camera: str, frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise RecordingError(f"Frame of camera '{camera}' must be an H x W x 3 uint8 image, got {frame.dtype} {frame.shape}.")
    return frame


def finalize_video(partial: Path, final: Path) -> int:
    """Remux what is decodable of a (possibly cut-off) fragmented mp4 into a regular mp4 at `final`,
    atomically; returns the number of frames kept (0: nothing was decodable, no file written)."""
    import av

    tmp = final.with_name(final.name + ".tmp")
    final.parent.mkdir(parents=True, exist_ok=True)
    frames = 0
    try:
        with av.open(str(partial)) as src:
            source = src.streams.video[0]
            with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "faststart"}) as dst:
                target = dst.add_stream_from_template(source)
                try:
                    for packet in src.demux(source):
                        if packet.dts is None:
                            continue  # the demuxer's end-of-stream marker
                        packet.stream = target
                        dst.mux(packet)
                        frames += 1
                except (av.error.InvalidDataError, av.error.EOFError):
                    pass  # a cut-off last fragment: keep what came before it
    except (av.error.InvalidDataError, av.error.EOFError, IndexError, OSError):
        frames = 0
    if frames == 0:
        tmp.unlink(missing_ok=True)
        return 0
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return frames


def rebuild_video(source: Path | None, final: Path, fps: float, frames: int, shape: tuple[int, int], crf: int = 23) -> int:
    """Re-encode a camera's episode video to exactly `frames` frames (LeRobot has one per row): what
    `source` decodes to, cut to `frames` or padded by repeating its last frame, black frames of
    `shape` where nothing decodes. Returns how many frames came from `source`."""
    decoded = np.zeros((0, *shape, 3), np.uint8)
    if source is not None and source.is_file():
        try:
            decoded = read_frames(source)[0][:, : shape[0], : shape[1]]
        except Exception:  # noqa: BLE001 - PyAV raises many types for a damaged file; nothing decodable
            decoded = np.zeros((0, *shape, 3), np.uint8)
    if len(decoded) == 0:
        decoded = np.zeros((1, *shape, 3), np.uint8)
        kept = 0
    else:
        kept = min(len(decoded), frames)
    scratch = final.with_name(final.name + ".rebuild")
    stream = VideoStream(scratch, fps, crf)
    try:
        for k in range(frames):
            stream.write(decoded[min(k, len(decoded) - 1)])
        stream.close()
        finalize_video(scratch, final)
    finally:
        scratch.unlink(missing_ok=True)
    return kept


def read_video(path: str | Path) -> np.ndarray:
    """All frames of an mp4 as (T, H, W, 3) uint8."""
    import imageio.v3 as iio

    return np.asarray(iio.imread(path, plugin="pyav"))


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # as the container says, else counted by demuxing (no decoding)
    fps: float | None  # None where the container gives no rate
    height: int
    width: int


def probe_video(path: str | Path) -> VideoInfo:
    """What a video holds, without decoding a frame."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(int(frames), float(rate) if rate else None, stream.codec_context.height, stream.codec_context.width)


def fit_pixels(height: int, width: int, max_pixels: int | None) -> tuple[int, int]:
    """(height, width) scaled down, aspect ratio kept, to at most `max_pixels` pixels; never scaled up."""
    if max_pixels is None or height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def read_frames(path: str | Path, indices: Iterable[int] | None = None, max_pixels: int | None = None) -> tuple[np.ndarray, int]:
    """The frames at `indices` (all when None) as (n, h, w, 3) uint8, and how many frames the video decoded to.

    Streaming: each frame is scaled to at most `max_pixels` pixels as it is decoded (in FFmpeg, before it
    becomes an array), and only the wanted ones are kept, so memory holds those small frames and the
    decoder's few reference frames, whatever the clip's length or resolution. Every frame is the size
    of the first one. A cut-off end after at least one frame stops decoding there."""
    import av

    wanted = None if indices is None else sorted({int(i) for i in indices})
    slot = {} if wanted is None else {i: k for k, i in enumerate(wanted)}
    listed: list[np.ndarray] = []
    out = None  # with `indices`, filled in place: no second copy of the kept frames at the end
    decoded, size = 0, (0, 0)
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(container.streams.video[0]):
                if decoded == 0:
                    size = fit_pixels(frame.height, frame.width, max_pixels)
                    out = None if wanted is None else np.zeros((len(wanted), *size, 3), np.uint8)
                if wanted is None or decoded in slot:
                    image = frame.to_ndarray(height=size[0], width=size[1], format="rgb24", interpolation="AREA")
                    if out is None:
                        listed.append(image)
                    else:
                        out[slot[decoded]] = image
                decoded += 1
        except (av.error.InvalidDataError, av.error.EOFError):
            if decoded == 0:
                raise
    if out is not None:
        return out[:sum(i < decoded for i in wanted)], decoded
    return (np.stack(listed) if listed else np.zeros((0, *size, 3), np.uint8)), decoded


class FrameWorker:
    """Runs encoding jobs in order on one background thread; `submit` blocks while `max_jobs` wait."""

    def __init__(self, max_jobs: int = 64):
        self._jobs: queue.Queue = queue.Queue(maxsize=max_jobs)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dsrl-recording-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as err:  # surfaced on the caller's next submit / wait
                self._error = err
            finally:
                self._jobs.task_done()

    def check(self) -> None:
        if self._error is not None:
            raise RecordingError(f"Video encoding failed ({type(self._error).__name__}: {self._error}); "
                                 "the episode's table is kept, check disk space and the camera frames.") from self._error

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        self._jobs.put(job)

    def wait(self) -> None:
        self._jobs.join()
        self.check()

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
