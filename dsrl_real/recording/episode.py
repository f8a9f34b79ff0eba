"""`EpisodeRecording`: one episode being recorded, made by `RunRecorder.begin_episode` (writer.py).

Each row is flushed to the OS as it is added (an Arrow IPC stream under `.in_progress/`), each
frame encoded as it arrives (in the background by default), and a small copy of each frame kept
for the camera's statistics; `finish` or `abort` hands the episode to the recorder to seal.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .columns import StepStream, flatten_step
from .features import DEFAULTS, MASK
from .labels import score_label
from .layout import RecordingError, write_scratch_json
from .video import VideoStream, check_frame

AUTO_COLUMNS = (*DEFAULTS, "wall_time_ns")
THUMBNAIL_SIDE = 32


def thumbnail(image: np.ndarray) -> np.ndarray:
    """Every n-th pixel, about THUMBNAIL_SIDE per side: enough for a camera's pixel statistics."""
    step = max(1, max(image.shape[:2]) // THUMBNAIL_SIDE)
    return image[::step, ::step].copy()


class EpisodeRecording:
    """One episode being recorded; made by `RunRecorder.begin_episode`."""

    def __init__(self, recorder: Any, index: int, kind: str, seed: int | None, instruction: str,
                 task_index: int, first_frame: int):
        self._rec = recorder  # the RunRecorder (writer.py) that made it and seals it
        self.index, self.kind, self.seed, self.instruction = index, kind, seed, instruction
        self._task_index, self._first_frame = task_index, first_frame
        self.rows = 0
        self.started_at = time.time()
        layout = recorder.layout
        self._folder = layout.partial_dir(index)
        write_scratch_json(self._folder / "episode.json", {"episode_index": index, "kind": kind, "seed": seed,
                                                   "instruction": instruction, "started_at": self.started_at})
        self._stream = StepStream(self._folder, declared=recorder.features)
        self._videos = {c: VideoStream(layout.partial_video(index, c), recorder.fps, recorder.crf) for c in recorder.cameras}
        self._pixels: dict[str, list[np.ndarray]] = {c: [] for c in recorder.cameras}  # small copies, for the statistics
        self._sealed: dict | None = None

    def add_step(self, **columns: Any) -> None:
        """One row: the observation, the action taken from it and what the step produced. See the
        module docstring of `recording.columns` for how names map to columns."""
        self._check_open()
        row: dict[str, Any] = {
            "timestamp": np.float32(self.rows / self._rec.fps), "frame_index": self.rows, "episode_index": self.index,
            "index": self._first_frame + self.rows, "task_index": self._task_index, "wall_time_ns": time.time_ns(),
        }
        flat = flatten_step(columns)
        clash = sorted(set(flat) & set(AUTO_COLUMNS))
        if clash:
            raise RecordingError(f"Columns {clash} are filled in by the recorder; give your values other names.")
        masks = sorted(name for name in flat if name.startswith(MASK))
        if masks:
            raise RecordingError(f"Column names starting with '{MASK}' ({', '.join(masks)}) are the recorder's masks; rename them.")
        row.update(flat)
        self._stream.write(row)
        self.rows += 1

    def add_frames(self, frames: dict[str, np.ndarray]) -> None:
        """One frame per camera (H x W x 3 uint8), copied and encoded (in the background by default)."""
        self._check_open()
        for camera, frame in frames.items():
            video = self._videos.get(camera)
            if video is None:
                raise RecordingError(f"Unknown camera '{camera}'; this run records {self._rec.cameras}.")
            image = np.array(check_frame(camera, frame), copy=True)
            self._rec._run_job(lambda video=video, image=image, kept=self._pixels[camera]: (video.write(image), kept.append(thumbnail(image))))

    def flush(self) -> None:
        """Wait until every frame added so far has been handed to its video file (rows are always
        on disk once `add_step` returns)."""
        self._check_open()
        self._rec._drain()

    def finish(self, success: bool, terminated: bool, truncated: bool, labels: dict[str, Any] | None = None,
               **extra: Any) -> dict:
        """Seal the episode with its outcome and every backend's label; returns its record (the line
        in meta/dsrl_episodes.jsonl). `extra` keys (e.g. safety_counts) go into the record as they are."""
        self._check_open()
        if self.rows == 0:
            raise RecordingError(f"Episode {self.index} has no rows to seal; add_step at least once (the final observation) before finish.")
        outcome = {"success": bool(success), "terminated": bool(terminated), "truncated": bool(truncated),
                   "labels": {name: score_label(label) for name, label in (labels or {}).items()},
                   "finished_at": time.time(), "extra": extra}
        return self._close(outcome)

    def abort(self, reason: str = "interrupted") -> dict:
        """Seal what was recorded so far as a partial episode (no outcome, no labels)."""
        if self._sealed is not None:
            return self._sealed
        return self._close(None, reason)

    def _close(self, outcome: dict | None, reason: str | None = None) -> dict:
        if outcome is not None:  # first, so that a crash while sealing still knows the outcome
            write_scratch_json(self._folder / "finish.json", outcome)
        try:
            self._stream.close()
            for video in self._videos.values():
                self._rec._run_job(video.close)
            self._rec._drain()
        finally:
            begin = {"kind": self.kind, "seed": self.seed, "instruction": self.instruction, "started_at": self.started_at}
            shapes = {c: v.shape for c, v in self._videos.items() if v.shape is not None}
            self._sealed = self._rec._seal(self.index, begin, outcome, reason, shapes, self._pixels)
            self._rec._active = None
        return self._sealed

    def _check_open(self) -> None:
        if self._sealed is not None:
            raise RecordingError(f"Episode {self.index} is already sealed; begin a new episode to record more.")

    def __enter__(self) -> EpisodeRecording:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._sealed is None:
            self.abort(f"{exc_type.__name__}" if exc_type else "left unfinished")

