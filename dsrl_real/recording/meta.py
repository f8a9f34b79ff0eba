"""LeRobot's meta files of a recorded run, written from the recorder's state: meta/info.json,
meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet and meta/stats.json, as the released
LeRobot (v3.0 datasets) reads them (lerobot/datasets/dataset_metadata.py, utils.py, io_utils.py).
Each is replaced atomically; info.json, which makes the folder a dataset, is written last.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import write_atomic
from .layout import CHUNKS_SIZE, CODEBASE_VERSION, DATA_PATH, VIDEO_PATH, Layout, file_place, jsonable, video_key, write_json
from .stats import dataset_stats

# Per-episode values of our records that go into LeRobot's episodes table too, so that
# `LeRobotDataset(..., episodes=...)` users can pick episodes by them; `dsrl/labels` is every
# backend's label as JSON text.
RECORD_COLUMNS = {"kind": pa.string(), "seed": pa.int64(), "partial": pa.bool_(), "success": pa.bool_()}


def whole(fps: float) -> int | float:
    """A rate as LeRobot writes it: an int when it is whole."""
    return int(fps) if float(fps).is_integer() else fps


def info(records: list[dict], tasks: list[str], features: dict, fps: float, robot_type: str | None, cameras: list[str]) -> dict:
    """meta/info.json (lerobot/datasets/utils.py: DatasetInfo; unknown keys would be dropped with a warning)."""
    n = len(records)
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": n,
        "total_frames": sum(r["length"] for r in records), "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": whole(fps),
        "splits": {"train": f"0:{n}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH if cameras else None,
        "features": features,
    }


def video_feature(height: int, width: int, fps: float, pix_fmt: str, codec: str) -> dict:
    """A camera's feature: the decoded frame's size (lerobot/datasets/video_utils.py: get_video_info)."""
    return {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": codec, "video.pix_fmt": pix_fmt,
                     "video.fps": whole(fps), "video.channels": 3,
                     "has_audio": False, "is_depth_map": False}}


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def write_tasks(layout: Layout, tasks: list[str]) -> None:
    """The task strings as the index named `task` (what LeRobot's `item["task"]` looks up)."""
    frame = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task"))
    write_atomic(layout.tasks, parquet_bytes(pa.Table.from_pandas(frame)))


def episodes_table(records: list[dict], stats: dict[int, dict], cameras: list[str], fps: float) -> pa.Table:
    """One row per episode, row i episode i (LeRobot indexes it by position)."""
    columns: dict[str, list] = {"episode_index": [], "tasks": [], "length": [], "data/chunk_index": [], "data/file_index": [],
                                "dataset_from_index": [], "dataset_to_index": []}
    for camera in cameras:
        for name in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            columns[f"videos/{video_key(camera)}/{name}"] = []
    first = 0
    for r in records:
        index, length = r["episode_index"], r["length"]
        place = file_place(index)
        columns["episode_index"].append(index)
        columns["tasks"].append(list(r["tasks"]))
        columns["length"].append(length)
        columns["data/chunk_index"].append(place["chunk_index"])
        columns["data/file_index"].append(place["file_index"])
        columns["dataset_from_index"].append(first)
        columns["dataset_to_index"].append(first + length)
        for camera in cameras:
            key = f"videos/{video_key(camera)}"
            columns[f"{key}/chunk_index"].append(place["chunk_index"])
            columns[f"{key}/file_index"].append(place["file_index"])
            columns[f"{key}/from_timestamp"].append(0.0)
            columns[f"{key}/to_timestamp"].append(length / fps)
        first += length
    arrays = {name: pa.array(values, pa.list_(pa.string()) if name == "tasks" else None) for name, values in columns.items()}
    features = dict.fromkeys(f for i in stats for f in stats[i])
    for feature in features:
        for stat in ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"):
            values = [stats[r["episode_index"]][feature][stat].tolist() for r in records]
            arrays[f"stats/{feature}/{stat}"] = pa.array(values)
    arrays["meta/episodes/chunk_index"] = pa.array([0] * len(records), pa.int64())
    arrays["meta/episodes/file_index"] = pa.array([0] * len(records), pa.int64())
    for name, kind in RECORD_COLUMNS.items():
        arrays[f"dsrl/{name}"] = pa.array([r.get(name) for r in records], kind)
    arrays["dsrl/labels"] = pa.array([json.dumps(jsonable(r.get("labels", {}))) for r in records], pa.string())
    return pa.table(arrays)


def write_episodes_table(layout: Layout, records: list[dict], stats: dict[int, dict], cameras: list[str], fps: float) -> None:
    write_atomic(layout.episodes_table, parquet_bytes(episodes_table(records, stats, cameras, fps)))


def read_episode_stats(layout: Layout) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """The per-episode statistics stored in the episodes table, by episode index."""
    if not layout.episodes_table.is_file():
        return {}
    table = pq.read_table(layout.episodes_table)
    out: dict[int, dict] = {}
    rows = table.to_pylist()
    for row in rows:
        stats: dict[str, dict] = {}
        for name, value in row.items():
            if name.startswith("stats/") and value is not None:
                feature, stat = name[len("stats/"):].rsplit("/", 1)
                stats.setdefault(feature, {})[stat] = np.asarray(value)
        out[int(row["episode_index"])] = stats
    return out


def write_meta(layout: Layout, records: list[dict], tasks: list[str], features: dict, stats: dict[int, dict],
               fps: float, robot_type: str | None, cameras: list[str]) -> None:
    """Every LeRobot meta file for the sealed `records`; info.json last."""
    write_tasks(layout, tasks)
    write_episodes_table(layout, records, stats, cameras, fps)
    totals = dataset_stats([stats[r["episode_index"]] for r in records if r["episode_index"] in stats])
    write_json(layout.stats, {name: {k: v.tolist() for k, v in s.items()} for name, s in totals.items()})
    write_json(layout.info, info(records, tasks, features, fps, robot_type, cameras))
