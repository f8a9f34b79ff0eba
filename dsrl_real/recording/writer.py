"""`RunRecorder`: every episode of a run written to disk while it happens, as a LeRobot v3.0 dataset.

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
in flight; reopening the run directory seals such an episode as `partial` (an episode cut off
before its first row leaves nothing). A `with` block around an episode seals it as partial on an
exception (Ctrl-C included). Sealing writes the episode as LeRobot stores it (features.py: declared
shapes, no nulls, `valid.<name>` masks) with one video frame per row. Sealed episodes and the meta
files are only ever replaced atomically, and earlier episodes' files change only when a later
episode brings a new column (they gain it, masked as absent). A run directory has one writer at a
time (runlock.py).
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
from .columns import StepStream, column_shape, read_stream_dir
from .episode import EpisodeRecording
from .features import DEFAULTS, conform, episode_features
from .labels import score_label
from .layout import (
    FORMAT,
    KINDS,
    Layout,
    LegacyLayout,
    RecordingError,
    read_json,
    read_jsonl,
    video_key,
    write_json,
    write_jsonl,
    write_scratch_json,
)
from .meta import read_episode_stats, video_feature, write_episodes_table, write_meta
from .stats import image_stats, table_stats
from .video import CODEC, FrameWorker, VideoStream, finalize_video, probe_video, read_frames, rebuild_video

STATS_FRAMES = 64  # frames per camera per episode that its pixel statistics sample, when decoded
STATS_PIXELS = 96 * 96


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
        if LegacyLayout(self.layout.root).episodes.is_file() and not self.layout.episodes.is_file():
            raise RecordingError(f"'{self.layout.root}' was recorded in the older LeRobot v2.1 layout; convert it with "
                                 f"`dsrl-real export {self.layout.root} NEW_DIR` and record into NEW_DIR, or choose another run directory.")
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
        self.tasks: list[str] = []
        for record in self.records:
            for task in record.get("tasks", []):
                if task not in self.tasks:
                    self.tasks.append(task)
        info = read_json(self.layout.info, {}) or {}
        self.features: dict[str, dict] = dict(info.get("features", {}))
        self.stats = read_episode_stats(self.layout)
        pending = read_json(self.layout.migration)
        if pending is not None:  # a crash while earlier episodes were gaining a column
            self._migrate(pending["features"])
        if self.records:  # heals a crash between our records and LeRobot's meta files
            self._write_meta()

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
        return self.tasks.index(instruction)

    # -- episodes ----------------------------------------------------------------------------------
    def begin_episode(self, kind: str, seed: int | None, instruction: str) -> EpisodeRecording:
        if kind not in KINDS:
            raise RecordingError(f"Unknown episode kind '{kind}'; choose one of: {', '.join(KINDS)}.")
        if self._active is not None:
            raise RecordingError(f"Episode {self._active.index} is still being recorded; finish or abort it first.")
        index = self.next_index
        self._active = EpisodeRecording(self, index, kind, seed, instruction, self._task_index(instruction), self._first_frame(index))
        return self._active

    def _first_frame(self, index: int) -> int:
        return sum(r["length"] for r in self.records if r["episode_index"] < index)

    def update_labels(self, episode_index: int, labels: dict[str, Any]) -> dict:
        """Add or replace backends' labels of a sealed episode (e.g. a late human label)."""
        for record in self.records:
            if record["episode_index"] == episode_index:
                record["labels"] = {**record.get("labels", {}), **{k: score_label(v) for k, v in labels.items()}}
                write_jsonl(self.layout.episodes, self.records)
                write_episodes_table(self.layout, self.records, self.stats, self.cameras, self.fps)
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
              shapes: dict[str, tuple[int, int]] | None = None, pixels: dict[str, list] | None = None) -> dict:
        """Turn an in-progress episode into final files and a record; idempotent, so a crash at any
        point leaves something the next `_recover` can finish. An episode with no row leaves nothing."""
        folder = self.layout.partial_dir(index)
        if outcome is None:  # `finish` may have recorded the outcome before an earlier attempt to seal failed
            outcome = read_json(folder / "finish.json")
            interruption = interruption if outcome is None else None
        table = read_stream_dir(folder)
        if table.num_rows == 0:
            shutil.rmtree(folder, ignore_errors=True)
            return {"episode_index": index, "length": 0, "partial": True, "dropped": True}
        rows = table.num_rows
        frames, padded, frame_shapes = {}, {}, {}
        for camera in self.cameras:
            frames[camera], padded[camera], frame_shapes[camera] = self._seal_video(index, camera, rows, (shapes or {}).get(camera))
        features = episode_features(table, self.features)
        for camera in self.cameras:
            key = video_key(camera)
            if key not in features and self.layout.video_path(index, camera).is_file():
                probed = probe_video(self.layout.video_path(index, camera))
                features[key] = video_feature(probed.height, probed.width, self.fps, "yuv420p", CODEC)
        earlier = [r for r in self.records if r["episode_index"] != index]
        if earlier and self._data_changes(features):
            self._migrate(features)
        self.features = features
        task_index = self._task_index(begin.get("instruction", ""))
        conformed = conform(table, features, episode_index=index, first_index=self._first_frame(index),
                            task_index=task_index, fps=self.fps)
        with atomic_file(self.layout.data_path(index)) as f:
            pq.write_table(conformed, f)
        self.stats[index] = self._episode_stats(index, conformed, pixels=pixels)
        record = self._record(index, begin, outcome, table, frames, interruption)
        record["frame_shapes"] = {c: list(s) for c, s in frame_shapes.items() if s is not None}
        if any(padded.values()):  # frames lost in a crash: the video repeats the last one that was kept
            record["padded_frames"] = {c: n for c, n in padded.items() if n}
        self.records = sorted(earlier + [record], key=lambda r: r["episode_index"])
        write_jsonl(self.layout.episodes, self.records)
        self._write_meta()
        shutil.rmtree(folder, ignore_errors=True)
        return record

    def _seal_video(self, index: int, camera: str, rows: int, shape: tuple[int, int] | None) -> tuple[int, int, tuple[int, int] | None]:
        """The camera's final video with exactly one frame per row (a cut-off one padded with its last
        frame); returns the frames it holds, how many of them are padding, and the frames' size."""
        partial, final = self.layout.partial_video(index, camera), self.layout.video_path(index, camera)
        recorded = finalize_video(partial, final) if partial.exists() else 0
        if recorded == rows:
            return rows, 0, shape or self._frame_shape(camera)
        if shape is None:
            probed = probe_video(final) if recorded else None
            shape = self._frame_shape(camera) or (probed and (probed.height, probed.width))
        if shape is None:
            return 0, 0, None  # no frame ever came from this camera: its size is unknown
        kept = rebuild_video(final if recorded else None, final, self.fps, rows, shape, self.crf)
        return rows, rows - kept, shape

    def _frame_shape(self, camera: str) -> tuple[int, int] | None:
        feature = self.features.get(video_key(camera))
        for record in reversed(self.records):
            if camera in record.get("frame_shapes", {}):
                return tuple(record["frame_shapes"][camera])
        return tuple(feature["shape"][:2]) if feature else None

    def _data_changes(self, features: dict) -> bool:
        """Whether earlier episodes' tables must change to fit `features` (a new column, mask or type)."""
        def data(fs: dict) -> dict:
            return {n: (f["dtype"], f["shape"]) for n, f in fs.items() if f["dtype"] != "video"}
        return data({**DEFAULTS, **self.features}) != data(features)

    def _migrate(self, features: dict) -> None:
        """Give every sealed episode's table the columns of `features` (values it did not have are
        masked as absent); a marker file lets a crash midway be finished on the next open."""
        write_json(self.layout.migration, {"features": features})
        for record in self.records:
            index = record["episode_index"]
            path = self.layout.data_path(index)
            table = conform(pq.read_table(path), features, episode_index=index, first_index=self._first_frame(index),
                            task_index=self._task_index(record.get("instruction", "")), fps=self.fps)
            with atomic_file(path) as f:
                pq.write_table(table, f)
            self.stats[index] = self._episode_stats(index, table, features)
        self.features = features
        self._write_meta()
        self.layout.migration.unlink(missing_ok=True)

    def _episode_stats(self, index: int, table: pa.Table, features: dict | None = None, pixels: dict[str, list] | None = None) -> dict:
        """The episode's statistics; a camera's from the small copies of its frames kept while
        recording (`pixels`, one per row), else from frames decoded from its video."""
        features = features or self.features
        stats = table_stats(table, features)
        for camera in self.cameras:
            path = self.layout.video_path(index, camera)
            kept = (pixels or {}).get(camera, [])
            if video_key(camera) in features and len(kept) == table.num_rows:
                stats[video_key(camera)] = image_stats(np.stack(kept))
            elif video_key(camera) in features and path.is_file():
                count = probe_video(path).frames
                picks = np.unique(np.linspace(0, count - 1, min(count, STATS_FRAMES)).round().astype(int))
                stats[video_key(camera)] = image_stats(read_frames(path, picks, STATS_PIXELS)[0])
        return stats

    def _write_meta(self) -> None:
        for record in self.records:
            index = record["episode_index"]
            if index not in self.stats or set(self.stats[index]) != self._stat_names():
                self.stats[index] = self._episode_stats(index, pq.read_table(self.layout.data_path(index)))
        write_meta(self.layout, self.records, self.tasks, self.features, self.stats, self.fps,
                   self.run_meta.get("meta", {}).get("robot_type"), self.cameras)

    def _stat_names(self) -> set[str]:
        return {n for n, f in self.features.items() if f["dtype"] not in ("string", "image")}

    def _record(self, index: int, begin: dict, outcome: dict | None, table: pa.Table, frames: dict, interruption: str | None) -> dict:
        columns = table.column_names
        started = begin.get("started_at")
        finished = outcome["finished_at"] if outcome is not None else None
        # The episode's robot time runs from begin_episode to its last recorded row: the time spent
        # scoring it afterwards (shadow backends, a human typing a label) does not count.
        last_row = pc.max(table.column("wall_time_ns")).as_py() / 1e9 if "wall_time_ns" in columns and table.num_rows else None
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

    def import_episode(self, record: dict, table: pa.Table, frames: dict[str, np.ndarray]) -> dict:
        """Append an episode recorded elsewhere (`dsrl-real export`): its free-form rows, its frames
        per camera and its record (outcome, labels, timings), sealed like one recorded here."""
        if self._active is not None:
            raise RecordingError(f"Episode {self._active.index} is still being recorded; finish or abort it first.")
        index = self.next_index
        folder = self.layout.partial_dir(index)
        begin = {"kind": record.get("kind"), "seed": record.get("seed"), "instruction": record.get("instruction", ""),
                 "started_at": record.get("started_at")}
        write_scratch_json(folder / "episode.json", {"episode_index": index, **begin})
        stream = StepStream(folder, declared=self.features)
        arrays = {f.name: (np.dtype(f.type.value_type.to_pandas_dtype()), column_shape(f)) for f in table.schema
                  if pa.types.is_list(f.type)}
        for row in table.to_pylist():
            stream.write({k: np.asarray(v, arrays[k][0]).reshape(arrays[k][1]) if k in arrays else v
                          for k, v in row.items() if v is not None and k not in DEFAULTS})
        stream.close()
        for camera, video in frames.items():
            out = VideoStream(self.layout.partial_video(index, camera), self.fps, self.crf)
            for frame in video:
                out.write(frame)
            out.close()
        outcome = None
        if not record.get("partial"):
            known = {"episode_index", "tasks", "length", "kind", "seed", "instruction", "partial", "success", "terminated",
                     "truncated", "steps", "labels", "started_at", "finished_at", "wall_time_s", "frames", "in_progress"}
            outcome = {"success": record.get("success"), "terminated": bool(record.get("terminated")),
                       "truncated": bool(record.get("truncated")), "labels": record.get("labels", {}),
                       "finished_at": record.get("finished_at"), "extra": {k: v for k, v in record.items() if k not in known}}
        shapes = {c: v.shape[1:3] for c, v in frames.items() if len(v)}
        return self._seal(index, begin, outcome, record.get("interruption"), shapes)

    def _recover(self, index: int) -> None:
        """Seal an episode a crash left in progress: complete if `finish` had been called, else partial."""
        folder = self.layout.partial_dir(index)
        if any(r["episode_index"] == index for r in self.records):  # sealed; only the cleanup was cut off
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
