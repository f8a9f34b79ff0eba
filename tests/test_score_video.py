"""`dsrl-real score` on a high-resolution clip: frames decoded one by one at the size the model takes,
only those the backend subsamples kept, so memory does not grow with the clip's resolution or length."""

import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest

from dsrl_real.analysis.score import SCORE_MAX_PIXELS, score_video
from dsrl_real.config import load_config
from dsrl_real.recording.video import fit_pixels, probe_video, read_frames
from dsrl_real.rewards.base import EPISODE_SCORE, EpisodeClip, EpisodeScore
from dsrl_real.rewards.frames import subsample_indices

HEIGHT, WIDTH, FRAMES, BAND = 1080, 1920, 12, 160  # frame i is black with a white band at x = i * BAND


def encode(path, frames: int = FRAMES, fps: int = 10):
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for i in range(frames):
            image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            image[:, i * BAND:(i + 1) * BAND] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def band_of(frame: np.ndarray) -> int:
    """Which frame of the clip this is: the position of its white band."""
    column = frame.mean(axis=(0, 2))
    return int(round(np.argmax(column > 128) * WIDTH / frame.shape[1] / BAND))


class Backend:
    """A reward model that subsamples `num_frames` frames, noting each clip it is given."""

    name, offers, num_frames = "fake", frozenset({EPISODE_SCORE}), 3

    def __init__(self):
        self.clips: list[EpisodeClip] = []

    def score_episode(self, clip):
        self.clips.append(clip)
        return EpisodeScore(reward=1.0, success=True, score=5, raw={"frame_indices": [0, 1, 2]})


def test_a_full_hd_clip_is_scored_at_the_model_size_without_holding_a_full_size_frame(tmp_path, monkeypatch):
    video = encode(tmp_path / "hd.mp4")
    backend = Backend()
    monkeypatch.setattr("dsrl_real.analysis.score.build_reward_backend", lambda cfg: backend)
    cfg = load_config(overrides=["reward.backend=roboreward", "reward.model=x"])
    score_video(cfg, str(video), "open the drawer")  # a first call imports what decoding needs, outside the measurement
    tracemalloc.start()
    try:
        result = score_video(cfg, str(video), "open the drawer")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    height, width = fit_pixels(HEIGHT, WIDTH, SCORE_MAX_PIXELS)
    assert (height, width) == (415, 739) and height * width <= 640 * 480
    clip = backend.clips[-1]
    assert clip.frames["video"].shape == (3, 415, 739, 3)
    wanted = subsample_indices(FRAMES, 3).tolist()
    assert wanted == [0, 6, 11] and [band_of(f) for f in clip.frames["video"]] == wanted
    assert clip.fps == pytest.approx(2 / (11 / 10))  # 3 frames over the 1.1 s they span, as subsample() times them
    assert (result["frames"], result["fps"], result["raw"]["frame_indices"]) == (FRAMES, 10.0, wanted)
    full_frame = HEIGHT * WIDTH * 3  # 6.2 MB: decoding at full size needs at least this, the old reader 12 times it
    kept = 3 * height * width * 3  # 2.8 MB
    assert peak < kept + height * width * 3 + 1_000_000 < full_frame, peak


def test_a_backend_without_num_frames_gets_every_frame_at_the_model_size(tmp_path, monkeypatch):
    video = encode(tmp_path / "hd.mp4", frames=4)
    seen = []

    class Human:
        name, offers = "human", frozenset({EPISODE_SCORE})

        def score_episode(self, clip):
            seen.append(clip)
            return EpisodeScore(reward=0.0, success=False)

    monkeypatch.setattr("dsrl_real.analysis.score.build_reward_backend", lambda cfg: Human())
    result = score_video(load_config(overrides=["reward.backend=human"]), str(video), "open the drawer")
    (clip,) = seen
    assert clip.frames["video"].shape == (4, 415, 739, 3) and clip.fps == 10.0 and result["frames"] == 4
    assert [band_of(f) for f in clip.frames["video"]] == [0, 1, 2, 3]


def test_a_container_without_a_frame_count_is_counted_and_small_frames_are_not_scaled(tmp_path):
    path = tmp_path / "clip.mkv"  # Matroska stores no frame count
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(7):
            image = np.full((48, 64, 3), 30 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    info = probe_video(path)
    assert (info.frames, info.fps, info.height, info.width) == (7, 5.0, 48, 64)
    frames, decoded = read_frames(path, [6, 0, 3], max_pixels=SCORE_MAX_PIXELS)
    assert decoded == 7 and frames.shape == (3, 48, 64, 3)
    assert [round(f.mean() / 30) for f in frames] == [0, 3, 6]  # in clip order
