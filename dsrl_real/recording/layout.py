"""Where a recorded run keeps its files: a LeRobot v3.0 dataset (what the released LeRobot reads),
one parquet file and one mp4 per camera per episode, plus this project's own records.

    meta/info.json                     LeRobot: fps, features, totals, path templates (written last)
    meta/stats.json                    LeRobot: every feature's statistics (stats.py)
    meta/tasks.parquet                 LeRobot: task string (the index) -> task_index
    meta/episodes/chunk-000/file-000.parquet
                                       LeRobot: one row per episode (length, where its rows and videos
                                       are, its statistics), plus `dsrl/kind`, `dsrl/partial`, ...
    meta/run.json                      ours: this run's metadata (cameras, fps, caller's meta)
    meta/dsrl_episodes.jsonl           ours: one record per sealed episode (kind, seed, outcome,
                                       labels, timings, partial)
    data/chunk-000/file-007.parquet    episode 7's rows (chunk = index // 1000, file = index % 1000)
    videos/observation.images.<camera>/chunk-000/file-007.mp4

An episode being recorded lives in `.in_progress/episode_000007/` (Arrow IPC stream segments, one
record batch per step, and a fragmented mp4 per camera), where no LeRobot reader looks. Sealing
turns it into the final files; every meta file is replaced atomically.

Runs recorded before the LeRobot v3.0 layout (`LegacyLayout`, LeRobot v2.1 paths) are still read,
and `dsrl-real export` converts them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError
from ..storage import write_atomic

CODEBASE_VERSION = "v3.0"
FORMAT = "dsrl_real.recording.v2"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
KINDS = ("warm_start", "train", "eval", "baseline", "demo")
IN_PROGRESS = re.compile(r"episode_(\d{6})$")
DATA_FILE = re.compile(r"chunk-(\d{3})/file-(\d{3})\.parquet$")


def video_key(camera: str) -> str:
    return f"observation.images.{camera}"


def file_place(index: int) -> dict[str, int]:
    """Episode `index`'s data and video files: one of each per episode."""
    return {"chunk_index": index // CHUNKS_SIZE, "file_index": index % CHUNKS_SIZE}


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path
    legacy = False

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    @property
    def info(self) -> Path:
        return self.meta / "info.json"

    @property
    def stats(self) -> Path:
        return self.meta / "stats.json"

    @property
    def tasks(self) -> Path:
        return self.meta / "tasks.parquet"

    @property
    def episodes_table(self) -> Path:
        return self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)

    @property
    def episodes(self) -> Path:
        """Our records of the sealed episodes."""
        return self.meta / "dsrl_episodes.jsonl"

    @property
    def run(self) -> Path:
        return self.meta / "run.json"

    @property
    def lock(self) -> Path:
        return self.meta / ".recorder.lock"

    @property
    def migration(self) -> Path:
        return self.meta / ".features_migration.json"

    def data_path(self, index: int) -> Path:
        return self.root / DATA_PATH.format(**file_place(index))

    def video_path(self, index: int, camera: str) -> Path:
        return self.root / VIDEO_PATH.format(video_key=video_key(camera), **file_place(index))

    def partial_dir(self, index: int) -> Path:
        return self.root / ".in_progress" / f"episode_{index:06d}"

    def partial_video(self, index: int, camera: str) -> Path:
        return self.partial_dir(index) / f"{camera}.mp4"

    def data_files(self) -> list[tuple[int, Path]]:
        """(index, path) of every sealed episode table on disk, whether a record names it or not."""
        found = []
        for path in (self.root / "data").glob("chunk-*/file-*.parquet"):
            match = DATA_FILE.search(path.as_posix())
            if match:
                found.append((int(match.group(1)) * CHUNKS_SIZE + int(match.group(2)), path))
        return sorted(found)

    def partial_episodes(self) -> list[int]:
        """Indices of episodes left in progress (being recorded now, or cut off by a crash)."""
        found = []
        for folder in (self.root / ".in_progress").glob("episode_*"):
            match = IN_PROGRESS.match(folder.name)
            if match and folder.is_dir():
                found.append(int(match.group(1)))
        return sorted(found)


@dataclasses.dataclass(frozen=True)
class LegacyLayout(Layout):
    """Runs recorded before the v3.0 layout: LeRobot v2.1 paths, read-only (`dsrl-real export` converts them)."""

    legacy = True

    @property
    def episodes(self) -> Path:
        return self.meta / "episodes.jsonl"

    def data_path(self, index: int) -> Path:
        return self.root / f"data/chunk-{index // CHUNKS_SIZE:03d}/episode_{index:06d}.parquet"

    def video_path(self, index: int, camera: str) -> Path:
        return self.root / f"videos/chunk-{index // CHUNKS_SIZE:03d}/{video_key(camera)}/episode_{index:06d}.mp4"

    def partial_dir(self, index: int) -> Path:
        return self.data_path(index).with_suffix(".partial")

    def partial_video(self, index: int, camera: str) -> Path:
        return self.video_path(index, camera).with_suffix(".partial.mp4")

    def data_files(self) -> list[tuple[int, Path]]:
        found = []
        for path in (self.root / "data").glob("chunk-*/episode_*.parquet"):
            match = re.match(r"episode_(\d+)\.parquet$", path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def partial_episodes(self) -> list[int]:
        found = []
        for folder in (self.root / "data").glob("chunk-*/episode_*.partial"):
            match = re.match(r"episode_(\d{6})\.partial$", folder.name)
            if match and folder.is_dir():
                found.append(int(match.group(1)))
        return sorted(found)


def layout_of(root: str | Path) -> Layout:
    """The layout a recorded run was written in: v2.1 runs have meta/episodes.jsonl and no v3.0 records."""
    root = Path(root)
    legacy = LegacyLayout(root)
    if legacy.episodes.is_file() and not Layout(root).episodes.is_file():
        return legacy
    info = read_json(root / "meta" / "info.json", {}) or {}
    return legacy if str(info.get("codebase_version", "")).startswith("v2") else Layout(root)


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays, dataclasses and enums converted; NaN/inf -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "name") and hasattr(value, "value"):  # enums, e.g. a HumanEvent
        return value.name
    return str(value)


def read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RecordingError(f"'{path}' is unreadable ({type(err).__name__}); restore it from a copy.") from err


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(jsonable(value), indent=2) + "\n").encode())


def write_scratch_json(path: Path, value: Any) -> None:
    """Atomic (rename) but not synced to disk: for the in-progress files of an episode, which a
    process crash keeps (the OS has them) and which recovery can do without."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(value)))
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise RecordingError(f"'{path}' is unreadable ({type(err).__name__}); restore it from a copy.") from err


def write_jsonl(path: Path, records: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(jsonable(r)) + "\n" for r in records).encode())
