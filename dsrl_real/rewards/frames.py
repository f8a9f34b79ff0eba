"""Which frames a video reward model sees: one camera of the clip, subsampled to a fixed count that always keeps
the last frame (the end state decides the score), with the timing a video model needs for its temporal encoding,
and the size qwen-vl-utils gives a frame that a Qwen-VL model sees as an image."""

from __future__ import annotations

import math
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


# How qwen-vl-utils 0.0.14 sizes an image it is handed without a size of its own (`fetch_image` in
# github.com/QwenLM/Qwen3-VL, qwen-vl-utils/src/qwen_vl_utils/vision_process.py): the side factor is the
# processor's patch size times a fixed spatial merge of 2, and the pixel count stays between 4 and 16384
# merged tokens. Robometer resizes every frame this way and then calls the processor with do_resize=False.
SPATIAL_MERGE_SIZE = 2
IMAGE_MIN_TOKEN_NUM = 4
IMAGE_MAX_TOKEN_NUM = 16384
MAX_ASPECT_RATIO = 200


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """qwen-vl-utils' `smart_resize`: the (height, width) nearest the input whose sides are multiples of `factor`
    and whose area lies in [min_pixels, max_pixels], keeping the aspect ratio as far as that allows."""
    if max_pixels < min_pixels:
        raise ValueError(f"max_pixels ({max_pixels}) must be at least min_pixels ({min_pixels}).")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"A {width}x{height} frame is too elongated for Qwen-VL (aspect ratio over {MAX_ASPECT_RATIO}).")
    # Python's round (half to even), as upstream.
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen_image_size(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """The size qwen-vl-utils' `fetch_image` gives a `height` x `width` image for a vision tower with `patch_size`
    (Qwen3-VL: 16, so sides are multiples of 32 and the area lies in [4 * 32², 16384 * 32²])."""
    factor = patch_size * SPATIAL_MERGE_SIZE
    return smart_resize(height, width, factor, IMAGE_MIN_TOKEN_NUM * factor**2, IMAGE_MAX_TOKEN_NUM * factor**2)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n, H, W, 3) uint8 frames resized to `height` x `width` as `fetch_image` does: PIL's bicubic `Image.resize`."""
    from PIL import Image

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))
                     for frame in frames])
