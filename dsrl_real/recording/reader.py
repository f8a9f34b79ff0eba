"""Reading a recorded run back: episode records and labels, per-step tables, decoded videos, and
per-episode arrays to seed a replay buffer or pretrain a base policy.

Read-only: an episode still being recorded, or cut off by a crash and not yet sealed, shows up
with `partial: True` and `in_progress: True`, readable up to its last flushed step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.episodes import Episode, NoEpisodesError, load_episode_folder
from .columns import column_shape, read_stream_dir
from .features import unmask
from .layout import Layout, RecordingError, layout_of, read_json, read_jsonl
from .video import read_video

OBS_PREFIX, IMAGE_PREFIX = "observation.", "observation.images."
RESTORE = "restore it from a copy of the run"


def _fault(err: BaseException) -> str:
    return "missing" if isinstance(err, FileNotFoundError) else f"unreadable ({type(err).__name__})"


def _table_rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def _video_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def _check(path: Path, name: str, expected: int | None, count, unit: str) -> list[str]:
    """[] when `path` opens and `count(path)` gives the `expected` number, else the one sentence saying what is wrong."""
    if not path.is_file():
        return [f"{name} is missing; {RESTORE}."]
    try:
        found = count(path)
    except Exception as err:  # pyarrow and PyAV raise many types for a damaged file
        return [f"{name} is unreadable ({type(err).__name__}); {RESTORE}."]
    if expected is not None and found != expected:
        return [f"{name} holds {found} of the {expected} {unit} its record counts; {RESTORE}."]
    return []


def is_recording(path: str | Path) -> bool:
    return Layout(Path(path)).run.is_file()


def is_legacy(path: str | Path) -> bool:
    """Whether `path` is a run recorded in the older LeRobot v2.1 layout (`dsrl-real export` converts it)."""
    return is_recording(path) and layout_of(path).legacy


@dataclass
class RecordedEpisode:
    """One episode as arrays. T = rows with an action; observations have T + 1 rows when the final
    observation was recorded (its row has no action), else T. `noise` is None when the run
    recorded none, and NaN on the steps that had none (e.g. inside a chunk, or demos)."""

    index: int
    kind: str | None
    seed: int | None
    instruction: str
    success: bool | None
    terminated: bool
    truncated: bool
    partial: bool
    labels: dict[str, dict]
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    noise: np.ndarray | None
    record: dict[str, Any] = field(default_factory=dict)
    table: pa.Table | None = None

    def __len__(self) -> int:
        return len(self.actions)

    def to_episode(self) -> Episode:
        """The `episodes.Episode` that imitation pretraining (`chunk_dataset`) reads."""
        meta = {"success": self.success, "terminated": self.terminated, "truncated": self.truncated, "kind": self.kind,
                "seed": self.seed, "instruction": self.instruction, "episode_index": self.index, "labels": self.labels}
        return Episode(dict(self.observations), self.actions, self.rewards, meta)

    def chunk_steps(self, chunk_size: int) -> dict[str, Any]:
        """The episode regrouped into the trainer's chunk steps, as `ReplayBuffer.add_episode` takes them.

        A chunk step starts at every row that carries noise (the trainer records w on a chunk's first
        step) or, without noise, every `chunk_size` rows. The stored chunk is the `chunk` column when
        recorded (the whole denoised chunk), else the executed actions padded with the last one.
        Rewards are summed over each chunk's steps (NaN counts as 0).
        """
        steps = len(self.actions)
        with_noise = self.noise is not None and steps > 0 and not np.isnan(self.noise[0]).all()
        if with_noise:
            starts = [t for t in range(steps) if not np.isnan(self.noise[t]).all()]
        else:
            starts = list(range(0, steps, chunk_size))
        ends = starts[1:] + [steps]
        recorded = _column(self.table, "chunk", steps) if self.table is not None and "chunk" in self.table.column_names else None
        chunks, rewards = [], []
        for s, e in zip(starts, ends):
            if recorded is not None and not np.isnan(recorded[s]).all():
                chunk = recorded[s].reshape(chunk_size, -1)
            else:
                index = np.minimum(np.arange(s, s + chunk_size), e - 1)
                chunk = self.actions[index]
            chunks.append(chunk)
            rewards.append(np.nansum(self.rewards[s:e]))
        obs_rows = starts + ([steps] if len(next(iter(self.observations.values()), [])) > steps else [])
        return {
            "observations": {k: v[obs_rows] for k, v in self.observations.items()},
            "noise": self.noise[starts].reshape(len(starts), chunk_size, -1) if with_noise else None,
            "chunks": np.asarray(chunks, np.float32).reshape(len(starts), chunk_size, -1),
            "rewards": np.asarray(rewards, np.float32),
            "terminated": self.terminated, "truncated": self.truncated, "kind": self.kind,
        }


def _column(table: pa.Table, name: str, rows: int) -> np.ndarray:
    """The first `rows` values of a column as a float/int array; array columns reshaped to their
    recorded shape; nulls become NaN."""
    f = table.schema.field(name)
    column = table.column(name).slice(0, rows).combine_chunks()
    if not pa.types.is_list(f.type):
        return column.to_numpy(zero_copy_only=False)
    shape = column_shape(f)
    dtype = np.dtype(f.type.value_type.to_pandas_dtype())
    if column.null_count == 0:
        return column.flatten().to_numpy(zero_copy_only=False).reshape(rows, *shape)
    out = np.full((rows, *shape), np.nan, dtype if dtype.kind == "f" else np.float64)
    for i in range(rows):
        if column[i].is_valid:
            out[i] = column[i].values.to_numpy(zero_copy_only=False).reshape(shape)
    return out


class RecordedRun:
    def __init__(self, run_dir: str | Path):
        self.layout = layout_of(run_dir)
        if not self.layout.run.is_file():
            raise RecordingError(f"'{run_dir}' holds no recorded episodes (no meta/run.json); "
                                 "record a run into it first, or give the run's output folder.")
        self.run_meta = read_json(self.layout.run)
        self.info = read_json(self.layout.info, {})
        sealed = read_jsonl(self.layout.episodes)
        self.tasks = list(dict.fromkeys(t for r in sealed for t in r.get("tasks", [])))
        done = {r["episode_index"] for r in sealed}
        live = [self._in_progress(i) for i in self.layout.partial_episodes() if i not in done]
        self.records: list[dict] = sorted(sealed + live, key=lambda r: r["episode_index"])

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def cameras(self) -> list[str]:
        return list(self.run_meta.get("cameras", []))

    @property
    def fps(self) -> float:
        return float(self.run_meta.get("fps", 0))

    def __len__(self) -> int:
        return len(self.records)

    def _in_progress(self, index: int) -> dict:
        folder = self.layout.partial_dir(index)
        begin = read_json(folder / "episode.json", {}) or {}
        outcome = read_json(folder / "finish.json")
        table = read_stream_dir(folder)
        return {
            "episode_index": index, "tasks": [begin.get("instruction", "")], "length": table.num_rows,
            "kind": begin.get("kind"), "seed": begin.get("seed"), "instruction": begin.get("instruction", ""),
            "partial": outcome is None, "in_progress": True,
            "success": outcome["success"] if outcome else None,
            "terminated": bool(outcome and outcome["terminated"]), "truncated": bool(outcome and outcome["truncated"]),
            "labels": (outcome or {}).get("labels", {}), "started_at": begin.get("started_at"),
        }

    def record(self, index: int) -> dict:
        for r in self.records:
            if r["episode_index"] == index:
                return r
        raise RecordingError(f"No episode {index} in '{self.root}'; it has episodes 0..{len(self.records) - 1}.")

    def table(self, index: int) -> pa.Table:
        if self.record(index).get("in_progress"):
            return read_stream_dir(self.layout.partial_dir(index))
        path = self.layout.data_path(index)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise RecordingError(f"'{path}', the table of episode {index}, is {_fault(err)}; {RESTORE}.") from err
        return table if self.layout.legacy else unmask(table, self.info.get("features", {}))

    def _name(self, path: Path) -> str:
        return f"'{path.relative_to(self.root)}'"

    def check_files(self) -> list[str]:
        """One sentence per missing or unreadable file of the sealed episodes (the table, and the video of each
        camera its record counts frames for) and per table on disk that no record names; [] when all is well.
        Reads each file's footer or packets, decodes nothing."""
        problems = []
        for r in self.records:
            if r.get("in_progress"):
                continue
            index = r["episode_index"]
            path = self.layout.data_path(index)
            problems += _check(path, self._name(path), r.get("length"), _table_rows, "rows")
            for camera, count in (r.get("frames") or {}).items():
                path = self.layout.video_path(index, camera)
                if count:
                    problems += _check(path, self._name(path), count, _video_frames, "frames")
        known = {r["episode_index"] for r in self.records}
        for index, path in self.layout.data_files():
            if index not in known:
                records = self._name(self.layout.episodes)
                problems.append(f"{self._name(path)} has no record in {records}; move it out of the run folder "
                                f"before recording more into it, or restore {records} from a copy.")
        return problems

    def video_path(self, index: int, camera: str) -> Path | None:
        for path in (self.layout.video_path(index, camera), self.layout.partial_video(index, camera)):
            if path.is_file():
                return path
        return None

    def frames(self, index: int, camera: str) -> np.ndarray:
        path = self.video_path(index, camera)
        if path is None:
            if (self.record(index).get("frames") or {}).get(camera):
                raise RecordingError(f"'{self.layout.video_path(index, camera)}', the '{camera}' video of episode {index}, "
                                     f"is missing; {RESTORE}.")
            raise RecordingError(f"Episode {index} has no video of camera '{camera}'; cameras recorded: {self.cameras}.")
        try:
            return read_video(path)
        except Exception as err:  # PyAV and imageio raise many types for a damaged file
            raise RecordingError(f"'{path}', the '{camera}' video of episode {index}, is {_fault(err)}; {RESTORE}.") from err

    def frame_shape(self, index: int, camera: str, default: tuple[int, int]) -> tuple[int, int]:
        """The size of the camera's frames in episode `index` (videos are padded to even sizes)."""
        recorded = (self.record(index).get("frame_shapes") or {}).get(camera)
        if recorded:
            return tuple(recorded)
        return tuple(self.info.get("features", {}).get(f"{IMAGE_PREFIX}{camera}", {}).get("shape", default)[:2])

    def episode(self, index: int, images: bool = False) -> RecordedEpisode:
        record, table = self.record(index), self.table(index)
        rows = table.num_rows
        names = table.column_names
        final_row = rows > 0 and "action" in names and not table.column("action")[rows - 1].is_valid
        steps = rows - 1 if final_row else rows
        observations = {}
        for name in names:
            if name.startswith(OBS_PREFIX) and not name.startswith(IMAGE_PREFIX):
                key = "proprio" if name == "observation.state" else name[len(OBS_PREFIX):]
                observations[key] = _column(table, name, rows)
        if images:
            for camera in self.cameras:
                frames = self.frames(index, camera)
                height, width = self.frame_shape(index, camera, frames.shape[1:3])
                if len(frames) < rows:
                    raise RecordingError(f"Episode {index} has {len(frames)} frames of camera '{camera}' for {rows} steps; "
                                         "it was cut off, leave it out (include_partial=False).")
                observations[f"{camera}_image"] = frames[:rows, :height, :width]
        actions = _column(table, "action", steps) if "action" in names else np.zeros((steps, 0), np.float32)
        rewards = _column(table, "next.reward", steps).astype(np.float32) if "next.reward" in names else np.full(steps, np.nan, np.float32)
        noise = _column(table, "noise", steps).astype(np.float32) if "noise" in names else None
        return RecordedEpisode(
            index=index, kind=record.get("kind"), seed=record.get("seed"), instruction=record.get("instruction", ""),
            success=record.get("success"), terminated=bool(record.get("terminated")), truncated=bool(record.get("truncated")),
            partial=bool(record.get("partial")), labels=record.get("labels", {}), observations=observations,
            actions=np.asarray(actions, np.float32), rewards=rewards, noise=noise, record=record, table=table,
        )

    def episodes(self, kinds: Iterable[str] | None = None, include_partial: bool = False, images: bool = False) -> Iterator[RecordedEpisode]:
        wanted = set(kinds) if kinds is not None else None
        for r in self.records:
            if (wanted is None or r.get("kind") in wanted) and (include_partial or not r.get("partial")):
                yield self.episode(r["episode_index"], images=images)


def replay_episodes(run_dir: str | Path, chunk_size: int, kinds: Iterable[str] | None = None,
                    images: bool = False) -> Iterator[dict[str, Any]]:
    """Every complete episode of a recorded run as `ReplayBuffer.add_episode` takes it (the caller
    adds the agent features of the observations), to seed a later run's buffer."""
    for episode in RecordedRun(run_dir).episodes(kinds, images=images):
        if len(episode):
            yield episode.chunk_steps(chunk_size)


def load_recorded_episodes(run_dir: str | Path, kinds: Iterable[str] | None = None, images: bool = True) -> list[Episode]:
    """Every sealed, complete episode of a recorded run as `episodes.Episode`s (for pretraining);
    a run recorded with `successful_only` in its meta gives its successful episodes only."""
    run = RecordedRun(run_dir)
    only_success = bool(run.run_meta.get("meta", {}).get("successful_only", False))
    return [ep.to_episode() for ep in run.episodes(kinds, images=images) if ep.success or not only_success]


def load_episodes(directory: str | Path) -> list[Episode]:
    """The complete episodes of a recorded run in `directory`, or else the `.npz` episodes there (for pretraining)."""
    if not is_recording(directory):
        return load_episode_folder(directory)
    episodes = load_recorded_episodes(directory)
    if not episodes:
        raise NoEpisodesError(f"The recorded run '{directory}' holds no complete episodes; record some first.")
    return episodes
