"""`dsrl-real export OLD NEW`: a run recorded in the older LeRobot v2.1 layout, converted into a LeRobot
v3.0 dataset that the released LeRobot loads. The old folder is only read; every episode (partial
ones too), its labels and outcome, rows and camera frames go into NEW. Its rows' wall-clock
times (`wall_time`, seconds) become `wall_time_ns`, as the recorder writes them now."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .layout import RecordingError
from .reader import RecordedRun, is_legacy
from .writer import RunRecorder


def _with_clock_in_ns(table: pa.Table) -> pa.Table:
    if "wall_time" not in table.column_names:
        return table
    seconds = table.column("wall_time")
    nanoseconds = pc.cast(pc.round(pc.multiply(seconds, 1e9)), pa.int64())
    return table.drop_columns(["wall_time"]).append_column("wall_time_ns", nanoseconds)


def export_run(source: str | Path, target: str | Path, progress=None) -> dict:
    """Convert `source` (v2.1 layout) into a v3.0 dataset at `target`; returns the counts converted."""
    source, target = Path(source), Path(target)
    if not is_legacy(source):
        raise RecordingError(f"'{source}' is not a run recorded in the LeRobot v2.1 layout; runs recorded now are already "
                             "LeRobot v3.0 datasets, and other folders cannot be exported.")
    if target.exists() and any(target.iterdir()):
        raise RecordingError(f"'{target}' is not empty; give a new or empty folder to export into.")
    old = RecordedRun(source)
    task = progress.add_task("exporting", total=len(old.records)) if progress is not None else None
    frames_total = 0
    with RunRecorder(target, old.cameras, old.fps, old.run_meta.get("meta", {})) as rec:
        for record in old.records:
            index = record["episode_index"]
            table = _with_clock_in_ns(old.table(index))
            frames = {}
            for camera in old.cameras:
                if old.video_path(index, camera) is not None:
                    height, width = old.frame_shape(index, camera, (0, 0))
                    frames[camera] = old.frames(index, camera)[:, :height or None, :width or None]
            rec.import_episode({**record, "source_episode_index": index}, table, frames)
            frames_total += table.num_rows
            if task is not None:
                progress.advance(task)
    return {"episodes": len(old.records), "frames": frames_total, "out_dir": str(target), "source": str(source),
            "cameras": old.cameras, "fps": old.fps}
