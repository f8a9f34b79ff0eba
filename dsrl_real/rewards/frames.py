"""Which frames a video reward model sees: one camera of the clip, subsampled to a fixed count that always keeps
the last frame (the end state decides the score), with the timing a video model needs for its temporal encoding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import EpisodeClip


@dataclass(frozen=True)
class SubsampledVideo:
    frames: np.ndarray  # (n, H, W, 3) uint8
    indices: np.ndarray  # (n,) positions in the original clip, strictly increasing, last = last frame
    timestamps: np.ndarray  # (n,) seconds since the clip's first frame: indices / fps of the clip
    fps: float  # frame rate of the subsampled video: n - 1 frame intervals over the time it spans


def subsample_indices(total: int, count: int) -> np.ndarray:
    """`count` evenly spaced indices into `total` frames, first and last included; all frames if there are fewer."""
    if total < 1:
        raise ValueError("The clip has no frames; a reward model needs at least one.")
    if count < 1:
        raise ValueError(f"num_frames must be at least 1, got {count}.")
    if total <= count:
        return np.arange(total)
    if count == 1:
        return np.array([total - 1])
    # The spacing is >= 1 frame, so rounding keeps the indices strictly increasing.
    return np.rint(np.linspace(0, total - 1, count)).astype(int)


def subsample(frames: np.ndarray, fps: float, count: int) -> SubsampledVideo:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Frames must be a (T, H, W, 3) uint8 array, got shape {frames.shape} and dtype {frames.dtype}.")
    if not fps > 0:
        raise ValueError(f"The clip's fps must be positive, got {fps}.")
    indices = subsample_indices(len(frames), count)
    timestamps = indices / float(fps)
    span = timestamps[-1] - timestamps[0]
    sub_fps = (len(indices) - 1) / span if span > 0 else float(fps)
    return SubsampledVideo(frames=frames[indices], indices=indices, timestamps=timestamps, fps=float(sub_fps))


def camera_frames(clip: EpisodeClip, camera: str | None) -> np.ndarray:
    """The frames of `camera`, or of the clip's first camera when `camera` is None."""
    if not clip.frames:
        raise ValueError("The episode clip has no camera frames; the learned reward backends need at least one camera.")
    if camera is None:
        return next(iter(clip.frames.values()))
    if camera not in clip.frames:
        raise ValueError(f"The reward backend watches camera {camera!r}, but the clip has only "
                         f"{sorted(clip.frames)}; set the backend's camera to one of those.")
    return clip.frames[camera]
