"""Where a recorded run keeps its files: the LeRobot v2.1 dataset layout, one parquet table and one
mp4 per camera per episode, so pandas and any mp4 reader open it without this package.

    meta/info.json                     LeRobot dataset info (fps, features, totals, path templates)
    meta/episodes.jsonl                one line per sealed episode: LeRobot's episode_index, tasks,
                                       length, plus kind, seed, outcome, labels, timings, partial
    meta/tasks.jsonl                   task_index -> instruction
    meta/run.json                      this run's own metadata (cameras, fps, caller's meta)
    data/chunk-000/episode_000000.parquet
    videos/chunk-000/observation.images.<camera>/episode_000000.mp4

An episode being recorded lives under in-progress names that no LeRobot reader picks up:
`data/chunk-000/episode_000007.partial/` (Arrow IPC stream segments, one record batch per step)
and `videos/.../episode_000007.partial.mp4` (fragmented mp4, flushed per packet). Sealing turns
them into the final files; every meta file is replaced atomically.
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

CODEBASE_VERSION = "v2.1"
FORMAT = "dsrl_real.recording.v1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
KINDS = ("warm_start", "train", "eval", "baseline", "demo")
PARTIAL_DIR = re.compile(r"episode_(\d{6})\.partial$")
DATA_FILE = re.compile(r"episode_(\d+)\.parquet$")


def video_key(camera: str) -> str:
    return f"observation.images.{camera}"


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    @property
    def info(self) -> Path:
        return self.meta / "info.json"

    @property
    def episodes(self) -> Path:
        return self.meta / "episodes.jsonl"

    @property
    def tasks(self) -> Path:
        return self.meta / "tasks.jsonl"

    @property
    def run(self) -> Path:
        return self.meta / "run.json"

    @property
    def lock(self) -> Path:
        return self.meta / ".recorder.lock"

    def data_path(self, index: int) -> Path:
        return self.root / DATA_PATH.format(episode_chunk=index // CHUNKS_SIZE, episode_index=index)

    def video_path(self, index: int, camera: str) -> Path:
        return self.root / VIDEO_PATH.format(episode_chunk=index // CHUNKS_SIZE, video_key=video_key(camera), episode_index=index)

    def partial_dir(self, index: int) -> Path:
        return self.data_path(index).with_suffix(".partial")

    def partial_video(self, index: int, camera: str) -> Path:
        return self.video_path(index, camera).with_suffix(".partial.mp4")

    def data_files(self) -> list[tuple[int, Path]]:
        """(index, path) of every sealed episode table on disk, whether meta/episodes.jsonl names it or not."""
        found = []
        for path in (self.root / "data").glob("chunk-*/episode_*.parquet"):
            match = DATA_FILE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def partial_episodes(self) -> list[int]:
        """Indices of episodes left in progress (being recorded now, or cut off by a crash)."""
        found = []
        for folder in (self.root / "data").glob("chunk-*/episode_*.partial"):
            match = PARTIAL_DIR.match(folder.name)
            if match and folder.is_dir():
                found.append(int(match.group(1)))
        return sorted(found)


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
