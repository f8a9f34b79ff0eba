"""`dsrl-real score`: one recorded episode video scored by a reward backend, offline."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..recording.video import probe_video, read_frames
from ..rewards.base import EpisodeClip
from ..rewards.frames import subsample_indices
from ..rewards.registry import SIM_TRUTH_BACKENDS, build_reward_backend

# Frames are decoded at no more than VGA's pixel count: more than Qwen3-VL's video processor (under RoboReward,
# in this process or served) gives each of 16 frames (its 786432-pixel budget split, floored at about 138k), and
# what robot cameras commonly record at. A 4K frame costs 25 MB as RGB; at this size, under 1 MB.
SCORE_MAX_PIXELS = 640 * 480


@dataclass(frozen=True)
class VideoClip:
    frames: np.ndarray  # the frames the backend looks at, (n, h, w, 3) uint8
    indices: np.ndarray  # their positions in the video
    total: int  # frames in the video
    fps: float  # the video's frame rate


def read_clip(path, count: int | None, fps: float, max_pixels: int | None = SCORE_MAX_PIXELS) -> VideoClip:
    """The `count` frames a backend subsamples from the video (all when None), decoded streaming and scaled down
    to `max_pixels` as they are decoded; `fps` where the video gives no rate. A container whose frame count is
    off (a cut-off file) is read a second time with the count the first pass found."""
    info = probe_video(path)
    total, frames, indices = info.frames, np.zeros((0, 0, 0, 3), np.uint8), np.arange(0)
    for _ in range(2):
        if total < 1:
            break
        indices = subsample_indices(total, count) if count else np.arange(total)
        frames, decoded = read_frames(path, indices, max_pixels)
        if decoded == total:
            break
        total = decoded
    if not len(frames):
        raise ConfigError(f"'{path}' holds no decodable video frames; give a colour video of the episode.")
    return VideoClip(frames, indices[:len(frames)], total, info.fps or fps)


def score_video(cfg: Config, video: str, task: str) -> dict[str, Any]:
    """Score a recorded episode video with the backend in cfg.reward, as `dsrl-real score` prints it.

    The video is decoded once the backend is built: only the frames its `num_frames` subsampling picks (every
    frame for a backend without one), each at most `SCORE_MAX_PIXELS`, so memory does not grow with the clip.
    The backend gets those frames at the subsampled rate, which it then takes whole."""
    path = Path(video)
    if not path.is_file():
        raise ConfigError(f"No video file '{video}'; give the path of a recorded episode video (e.g. an mp4).")
    if not task.strip():
        raise ConfigError("The task instruction is empty; pass --task with what the robot was asked to do.")
    if cfg.reward.backend in SIM_TRUTH_BACKENDS:
        raise ConfigError(f"The {cfg.reward.backend} backend needs simulator ground truth, which a video does not carry; "
                          "choose --backend roboreward, robometer or human.")

    def unreadable(err: Exception) -> ConfigError:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return ConfigError(f"Could not read '{video}' as a video ({reason}); give a video file PyAV can decode, such as an mp4.")

    try:
        probe_video(path)  # before loading a model: a file that is no video fails at once
    except Exception as err:  # PyAV raises many types for a file that is not a video
        raise unreadable(err) from err
    camera = cfg.reward.camera or "video"
    cfg = dataclasses.replace(cfg, reward=dataclasses.replace(cfg.reward, camera=camera))  # the clip's only camera
    backend = build_reward_backend(cfg)
    try:
        try:
            clip = read_clip(path, getattr(backend, "num_frames", None), cfg.robot.control_hz)
        except ConfigError:
            raise
        except Exception as err:
            raise unreadable(err) from err
        span = (clip.indices[-1] - clip.indices[0]) / clip.fps
        fps = (len(clip.indices) - 1) / span if span > 0 else clip.fps  # as rewards.frames.subsample times them
        score = backend.score_episode(EpisodeClip(frames={camera: clip.frames}, instruction=task, fps=fps))
    finally:
        if hasattr(backend, "close"):
            backend.close()
    raw = score.raw
    if isinstance(raw, dict) and "frame_indices" in raw:  # the backend's positions in what it got -> in the video
        raw = {**raw, "frame_indices": [int(clip.indices[i]) for i in raw["frame_indices"]]}
    return {"backend": backend.name, "video": str(path), "task": task, "frames": clip.total, "fps": clip.fps,
            "reward": float(score.reward), "success": bool(score.success), "score": score.score,
            "valid": bool(getattr(score, "valid", True)), "raw": raw}
