"""`RunRecorder`: every episode of a run written to disk while it happens, in the LeRobot layout.

    rec = RunRecorder(run_dir, cameras=["third_person", "wrist"], fps=5.0, meta={"robot_type": "wx250s"})
    ep = rec.begin_episode(kind="train", seed=3, instruction="pull the drawer out")
    ep.add_frames({"third_person": img0, "wrist": img1})       # one frame per camera per row
    ep.add_step(observation=obs, action=a, reward=r, noise=w, stage=0, progress={"robometer": 0.4})
    ...                                                          # last row: the final observation, no action
    ep.finish(success=True, terminated=True, truncated=False, labels={"human": {"score": 5, "success": True}})
    rec.close()

One row per observation: row t holds o_t, the action taken from it and what that step produced
(`reward`, timings, safety); the final observation's row has no action. Every row is flushed to
the OS as it is added and every frame encoded as it arrives, so a SIGKILL loses at most the step
in flight; reopening the run directory seals such an episode as `partial`. A `with` block around
an episode seals it as partial on an exception (Ctrl-C included). Sealed episodes and the meta
files are only ever replaced atomically. A run directory has one writer at a time (runlock.py).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..runlock import RunLock
from ..storage import atomic_file
from .columns import StepStream, column_shape, feature_dtype, flatten_step, read_stream_dir
from .labels import score_label
from .layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_PATH,
    FORMAT,
    KINDS,
    VIDEO_PATH,
    Layout,
    RecordingError,
    read_json,
    read_jsonl,
    video_key,
    write_json,
    write_jsonl,
    write_scratch_json,
)
from .video import CODEC, FrameWorker, VideoStream, check_frame, finalize_video

AUTO_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index", "wall_time")


class RunRecorder:
    def __init__(self, run_dir: str | Path, cameras: list[str], fps: float, meta: dict | None = None, *,
                 background_encoding: bool = True, crf: int = 23, max_queued_frames: int = 64, run_lock: RunLock | None = None):
        if fps <= 0:
            raise RecordingError(f"The recording rate must be positive, got fps={fps}.")
        if len(set(cameras)) != len(cameras):
            raise RecordingError(f"Camera names must be unique, got {list(cameras)}.")
        bad = [c for c in cameras if not re.fullmatch(r"[A-Za-z0-9_-]+", c)]
        if bad:
            raise RecordingError(f"Camera names {bad} would not make file names; use letters, digits, '_' and '-'.")
        self.layout = Layout(Path(run_dir))
        self.cameras, self.fps, self.crf = list(cameras), float(fps), crf
        # One writer per run folder (runlock.py); a caller that already holds the folder (the
        # trainer, which writes its checkpoints and metrics there too) passes its lock in.
        self._own_lock = run_lock is None
        self._run_lock = run_lock or RunLock.acquire(run_dir, "a recorder", "choose another run directory", RecordingError)
        try:
            self.layout.meta.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self._release_lock()
            raise
        self._worker = FrameWorker(max_queued_frames) if background_encoding else None
        self._active: EpisodeRecording | None = None
        try:
            self._open_run(dict(meta or {}))
            for index in self.layout.partial_episodes():
                self._recover(index)
        except BaseException:
            self._release()
            raise

    # -- run state ---------------------------------------------------------------------------------
    def _open_run(self, meta: dict) -> None:
        run = read_json(self.layout.run)
        if run is None:
            if self.layout.info.exists():
                raise RecordingError(f"'{self.layout.root}' holds a dataset not recorded by dsrl_real; choose another run directory.")
            run = {"format": FORMAT, "cameras": self.cameras, "fps": self.fps, "created_at": time.time(), "meta": meta}
            write_json(self.layout.run, run)
        elif run.get("cameras") != self.cameras or float(run.get("fps", 0)) != self.fps:
            raise RecordingError(f"'{self.layout.root}' was recorded with cameras {run.get('cameras')} at {run.get('fps')} Hz; "
                                 f"record with the same cameras and rate, or choose another run directory.")
        self.run_meta = run
        self.records: list[dict] = read_jsonl(self.layout.episodes)
        self.tasks: list[str] = [t["task"] for t in read_jsonl(self.layout.tasks)]
        info = read_json(self.layout.info, {})
        self.features: dict[str, dict] = dict(info.get("features", {}))

    @property
    def run_dir(self) -> Path:
        return self.layout.root

    @property
    def next_index(self) -> int:
        """After every index in use: recorded, on disk without a record, or left in progress."""
        on_disk = [i for i, _ in self.layout.data_files()] + self.layout.partial_episodes()
        return max([r["episode_index"] for r in self.records] + on_disk, default=-1) + 1

    def _task_index(self, instruction: str) -> int:
        if instruction not in self.tasks:
            self.tasks.append(instruction)
            write_jsonl(self.layout.tasks, [{"task_index": i, "task": t} for i, t in enumerate(self.tasks)])
        return self.tasks.index(instruction)

    # -- episodes ----------------------------------------------------------------------------------
    def begin_episode(self, kind: str, seed: int | None, instruction: str) -> EpisodeRecording:
        if kind not in KINDS:
            raise RecordingError(f"Unknown episode kind '{kind}'; choose one of: {', '.join(KINDS)}.")
        if self._active is not None:
            raise RecordingError(f"Episode {self._active.index} is still being recorded; finish or abort it first.")
        index = self.next_index
        first_frame = sum(r["length"] for r in self.records)
        self._active = EpisodeRecording(self, index, kind, seed, instruction, self._task_index(instruction), first_frame)
        return self._active

    def update_labels(self, episode_index: int, labels: dict[str, Any]) -> dict:
        """Add or replace backends' labels of a sealed episode (e.g. a late human label)."""
        for record in self.records:
            if record["episode_index"] == episode_index:
                record["labels"] = {**record.get("labels", {}), **{k: score_label(v) for k, v in labels.items()}}
                write_jsonl(self.layout.episodes, self.records)
                return record
        raise RecordingError(f"No sealed episode {episode_index} in '{self.layout.root}'; it has {len(self.records)} episodes.")

    def _run_job(self, job) -> None:
        if self._worker is None:
            job()
        else:
            self._worker.submit(job)

    def _drain(self) -> None:
        if self._worker is not None:
            self._worker.wait()

    # -- sealing -----------------------------------------------------------------------------------
    def _seal(self, index: int, begin: dict, outcome: dict | None, interruption: str | None = None,
              shapes: dict[str, tuple[int, int]] | None = None) -> dict:
        """Turn an in-progress episode into final files and a record; idempotent, so a crash at any
        point leaves something the next `_recover` can finish."""
        folder = self.layout.partial_dir(index)
        if outcome is None:  # `finish` may have recorded the outcome before an earlier attempt to seal failed
            outcome = read_json(folder / "finish.json")
            interruption = interruption if outcome is None else None
        table = read_stream_dir(folder)
        with atomic_file(self.layout.data_path(index)) as f:
            pq.write_table(table, f)
        frames = {}
        for camera in self.cameras:
            partial = self.layout.partial_video(index, camera)
            if partial.exists():
                frames[camera] = finalize_video(partial, self.layout.video_path(index, camera))
        record = self._record(index, begin, outcome, table, frames, interruption)
        self._update_features(table.schema, frames, index, shapes or {})
        self.records = [r for r in self.records if r["episode_index"] != index] + [record]
        self.records.sort(key=lambda r: r["episode_index"])
        write_jsonl(self.layout.episodes, self.records)
        write_json(self.layout.info, self.info())
        for camera in self.cameras:
            self.layout.partial_video(index, camera).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        return record

    def _record(self, index: int, begin: dict, outcome: dict | None, table: pa.Table, frames: dict, interruption: str | None) -> dict:
        columns = table.column_names
        started = begin.get("started_at")
        finished = outcome["finished_at"] if outcome is not None else None
        # The episode's robot time runs from begin_episode to its last recorded row: the time spent
        # scoring it afterwards (shadow backends, a human typing a label) does not count.
        last_row = float(pc.max(table.column("wall_time")).as_py()) if "wall_time" in columns and table.num_rows else None
        end = last_row if last_row is not None else finished
        record = {
            "episode_index": index, "tasks": [begin.get("instruction", "")], "length": table.num_rows,
            "kind": begin.get("kind"), "seed": begin.get("seed"), "instruction": begin.get("instruction", ""),
            "partial": outcome is None,
            "success": outcome["success"] if outcome else None,
            "terminated": outcome["terminated"] if outcome else False,
            "truncated": outcome["truncated"] if outcome else False,
            "steps": table.num_rows - table.column("action").null_count if "action" in columns else 0,
            "labels": outcome.get("labels", {}) if outcome else {},
            "started_at": started, "finished_at": finished if finished is not None else end,
            "wall_time_s": (end - started) if started is not None and end is not None else None,
            "frames": frames,
        }
        for name, key in (("safety_intervened", "safety_interventions"), ("overrun", "overruns")):
            if name in columns:
                record[key] = int(pc.sum(table.column(name).cast(pa.int64())).as_py() or 0)
        if interruption:
            record["interruption"] = interruption
        if outcome:
            record.update(outcome.get("extra", {}))
        return record

    def _update_features(self, schema: pa.Schema, frames: dict, index: int, shapes: dict) -> None:
        for f in schema:
            if f.name not in self.features or self.features[f.name].get("dtype") == "null":
                self.features[f.name] = {"dtype": feature_dtype(f), "shape": column_shape(f), "names": None}
        for camera, count in frames.items():
            key = video_key(camera)
            if count and key not in self.features:
                self.features[key] = self._video_feature(self.layout.video_path(index, camera), shapes.get(camera))

    def _video_feature(self, path: Path, shape: tuple[int, int] | None) -> dict:
        """The camera's feature; `shape` is the frames' own size where the video is padded to even sizes."""
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            height, width, pix_fmt = stream.codec_context.height, stream.codec_context.width, stream.codec_context.pix_fmt
        frame_height, frame_width = shape or (height, width)
        return {"dtype": "video", "shape": [frame_height, frame_width, 3], "names": ["height", "width", "channel"],
                "info": {"video.fps": self.fps, "video.height": height, "video.width": width, "video.channels": 3,
                         "video.codec": CODEC, "video.pix_fmt": pix_fmt, "video.is_depth_map": False, "has_audio": False}}

    def info(self) -> dict:
        """meta/info.json: LeRobot's fields, then ours."""
        n = len(self.records)
        last = max((r["episode_index"] for r in self.records), default=-1)
        fps = int(self.fps) if self.fps.is_integer() else self.fps
        return {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.run_meta.get("meta", {}).get("robot_type"),
            "total_episodes": n, "total_frames": sum(r["length"] for r in self.records), "total_tasks": len(self.tasks),
            "total_videos": sum(1 for r in self.records for c in r.get("frames", {}).values() if c),
            "total_chunks": last // CHUNKS_SIZE + 1 if n else 0, "chunks_size": CHUNKS_SIZE, "fps": fps,
            "splits": {"train": f"0:{n}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH if self.cameras else None,
            "features": self.features, "dsrl_real_format": FORMAT,
        }

    def _recover(self, index: int) -> None:
        """Seal an episode a crash left in progress: complete if `finish` had been called, else partial."""
        folder = self.layout.partial_dir(index)
        if any(r["episode_index"] == index for r in self.records):  # sealed; only the cleanup was cut off
            for camera in self.cameras:
                self.layout.partial_video(index, camera).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            return
        begin = read_json(folder / "episode.json", {}) or {}
        self._seal(index, begin, None, interruption="crashed")

    # -- closing -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Seals an episode still in progress as partial, stops the encoder, releases the run directory."""
        try:
            if self._active is not None:
                self._active.abort("the recorder was closed mid-episode")
        finally:
            self._release()

    def _release(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._own_lock:
            self._run_lock.release()

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EpisodeRecording:
    """One episode being recorded; made by `RunRecorder.begin_episode`."""

    def __init__(self, recorder: RunRecorder, index: int, kind: str, seed: int | None, instruction: str,
                 task_index: int, first_frame: int):
        self._rec = recorder
        self.index, self.kind, self.seed, self.instruction = index, kind, seed, instruction
        self._task_index, self._first_frame = task_index, first_frame
        self.rows = 0
        self.started_at = time.time()
        layout = recorder.layout
        self._folder = layout.partial_dir(index)
        write_scratch_json(self._folder / "episode.json", {"episode_index": index, "kind": kind, "seed": seed,
                                                   "instruction": instruction, "started_at": self.started_at})
        self._stream = StepStream(self._folder)
        self._videos = {c: VideoStream(layout.partial_video(index, c), recorder.fps, recorder.crf) for c in recorder.cameras}
        self._sealed: dict | None = None

    def add_step(self, **columns: Any) -> None:
        """One row: the observation, the action taken from it and what the step produced. See the
        module docstring of `recording.columns` for how names map to columns."""
        self._check_open()
        row: dict[str, Any] = {
            "timestamp": np.float32(self.rows / self._rec.fps), "frame_index": self.rows, "episode_index": self.index,
            "index": self._first_frame + self.rows, "task_index": self._task_index, "wall_time": time.time(),
        }
        flat = flatten_step(columns)
        clash = sorted(set(flat) & set(AUTO_COLUMNS))
        if clash:
            raise RecordingError(f"Columns {clash} are filled in by the recorder; give your values other names.")
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
            self._rec._run_job(lambda video=video, image=image: video.write(image))

    def flush(self) -> None:
        """Wait until every frame added so far has been handed to its video file (rows are always
        on disk once `add_step` returns)."""
        self._check_open()
        self._rec._drain()

    def finish(self, success: bool, terminated: bool, truncated: bool, labels: dict[str, Any] | None = None,
               **extra: Any) -> dict:
        """Seal the episode with its outcome and every backend's label; returns its record (the line
        in meta/episodes.jsonl). `extra` keys (e.g. safety_counts) go into the record as they are."""
        self._check_open()
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
            self._sealed = self._rec._seal(self.index, begin, outcome, reason, shapes)
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

