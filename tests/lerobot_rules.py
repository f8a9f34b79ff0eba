"""What the released LeRobot (0.6.1, v3.0 datasets) requires of a dataset folder, checked with pyarrow,
pandas and PyAV only, so the suite holds the recorder to it without LeRobot installed (the real
loader runs in CI's second venv: tests/lerobot/check_dataset.py). Each rule names the LeRobot code
that enforces it; breaking any one of them made LeRobot 0.6.1 fail or silently misread a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# lerobot/utils/constants.py: DEFAULT_FEATURES
DEFAULTS = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64", "task_index": "int64"}
# lerobot/datasets/utils.py: DatasetInfo fields read from info.json
INFO_KEYS = {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
             "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features"}
STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")


def arrow_type_ok(kind: pa.DataType, feature: dict) -> bool:
    """The Arrow type `datasets` casts to the feature (lerobot/datasets/feature_utils.py:
    get_hf_features_from_features): a plain scalar for shape (1,), not a 1-element list; lists nested
    as deep as the shape, never flat."""
    shape = list(feature["shape"])
    if shape == [1]:
        return not (pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind))
    for size in shape:
        if not (pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind)):
            return False
        if pa.types.is_fixed_size_list(kind) and kind.list_size != size:
            return False
        kind = kind.value_type
    return not (pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind))


def leaves(array: pa.Array) -> pa.Array:
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    return array


def check(root: Path) -> dict:
    """Asserts every rule; returns info.json."""
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and set(info) == INFO_KEYS  # unknown keys are dropped with a warning
    features, fps = info["features"], info["fps"]
    assert all(features[name]["dtype"] == dtype and features[name]["shape"] == [1] for name, dtype in DEFAULTS.items())
    columns = {name for name, ft in features.items() if ft["dtype"] != "video"}
    cameras = [name for name, ft in features.items() if ft["dtype"] == "video"]

    # lerobot/datasets/io_utils.py: load_nested_dataset reads sorted(data/*/*.parquet) as one table,
    # cast to the declared features: an undeclared column or a declared one missing fails the cast.
    files = sorted((root / "data").glob("*/*.parquet"))
    tables = [pq.read_table(path) for path in files]
    for path, table in zip(files, tables):
        assert set(table.column_names) == columns, f"{path}: {set(table.column_names) ^ columns}"
        for f in table.schema:
            assert arrow_type_ok(f.type, features[f.name]), f"{path}: {f.name} is {f.type}, declared {features[f.name]}"
            assert table.column(f.name).null_count == 0, f"{path}: {f.name} has nulls"  # None breaks the DataLoader's collate
            values = leaves(table.column(f.name).combine_chunks())
            if pa.types.is_floating(values.type):
                assert np.isfinite(values.to_numpy(zero_copy_only=False)).all(), f"{path}: {f.name} has NaN/Inf"  # doctor FAILs
    rows = pd.concat([t.select(list(DEFAULTS)).to_pandas() for t in tables], ignore_index=True)
    assert len(rows) == info["total_frames"]
    # lerobot/datasets/dataset_reader.py: the concatenated table is indexed by position, delta windows by `index`.
    assert rows["index"].tolist() == list(range(len(rows)))
    # video_utils.decode_video_frames: a row's frame is found at from_timestamp + timestamp within 1e-4 s.
    np.testing.assert_array_equal(rows["timestamp"].to_numpy(), (rows["frame_index"] / fps).astype(np.float32).to_numpy())

    # lerobot/datasets/dataset_metadata.py: meta.episodes[i] is row i; total_episodes must match what is on disk.
    episodes = pd.read_parquet(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert episodes["episode_index"].tolist() == list(range(info["total_episodes"]))
    assert sorted(rows["episode_index"].unique().tolist()) == list(range(info["total_episodes"]))
    for _, ep in episodes.iterrows():
        mine = rows[rows["episode_index"] == ep["episode_index"]]
        assert (ep["dataset_from_index"], ep["dataset_to_index"], ep["length"]) == (mine["index"].min(), mine["index"].max() + 1, len(mine))
        assert mine["frame_index"].tolist() == list(range(len(mine)))
        data_file = root / info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
        assert pq.read_table(data_file, columns=["episode_index"]).column(0).to_pylist() == [ep["episode_index"]] * len(mine)
        for camera in cameras:
            video = root / info["video_path"].format(video_key=camera, chunk_index=ep[f"videos/{camera}/chunk_index"],
                                                     file_index=ep[f"videos/{camera}/file_index"])
            with av.open(str(video)) as container:
                stream = container.streams.video[0]
                times = [float(frame.pts * frame.time_base) for frame in container.decode(stream)]
                size = [stream.codec_context.height, stream.codec_context.width, 3]
            start = ep[f"videos/{camera}/from_timestamp"]
            np.testing.assert_allclose(times, start + np.arange(len(mine)) / fps, atol=1e-4)  # one frame per row
            assert ep[f"videos/{camera}/to_timestamp"] == pytest.approx(start + len(mine) / fps)
            assert size == features[camera]["shape"]  # what LeRobot decodes, (C, H, W) of the declared (H, W, C)

    # meta/tasks.parquet: the task strings are the index named `task` (item["task"] looks them up).
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    assert tasks.index.name == "task" and tasks["task_index"].tolist() == list(range(info["total_tasks"])) and len(tasks) >= 1
    assert set(rows["task_index"]) <= set(tasks["task_index"])

    # meta/stats.json as compute_stats.py lays it out: the last dimension, (3, 1, 1) for cameras.
    stats = json.loads((root / "meta" / "stats.json").read_text())
    for name, ft in features.items():
        if ft["dtype"] == "string":
            continue
        want = (3, 1, 1) if ft["dtype"] == "video" else (ft["shape"][-1],)
        assert all(np.shape(stats[name][s]) == (want if s != "count" else (1,)) for s in STATS), name
    return info
