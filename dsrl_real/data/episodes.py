"""Episodes on disk: one compressed `.npz` per episode, written atomically, readable with numpy alone.

Each file holds `obs/<key>` arrays of length T+1 (the final observation included), `actions`
(T x A), `rewards` (T), and a JSON `meta` string (task, seed, success, terminated, truncated, ...).
`recording.load_episodes` reads either a folder of these or a run recorded by `recording.RunRecorder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError, UserError
from ..storage import create_beside, fsync_dir

EPISODE_FILE = re.compile(r"episode_(\d+)\.npz$")


@dataclass
class Episode:
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def success(self) -> bool:
        return bool(self.meta.get("success", False))


class EpisodeBuilder:
    """Accumulates one episode step by step."""

    def __init__(self, first_obs: dict[str, np.ndarray], **meta):
        self._obs = {k: [np.asarray(v)] for k, v in first_obs.items()}
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self.meta = dict(meta)

    def add(self, action, reward: float, next_obs: dict[str, np.ndarray]) -> None:
        self._actions.append(np.asarray(action, np.float32))
        self._rewards.append(float(reward))
        for k, v in next_obs.items():
            self._obs[k].append(np.asarray(v))

    def build(self, **meta) -> Episode:
        return Episode(
            observations={k: np.stack(v) for k, v in self._obs.items()},
            actions=np.stack(self._actions) if self._actions else np.zeros((0, 0), np.float32),
            rewards=np.asarray(self._rewards, np.float32),
            meta={**self.meta, **meta},
        )


def episode_files(directory: str | Path) -> list[tuple[int, Path]]:
    """(index, path) of the episode files in `directory`, by index (not by name: 7-digit indices sort last)."""
    found = []
    for path in Path(directory).glob("episode_*.npz"):
        match = EPISODE_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_episode(directory: str | Path, episode: Episode) -> Path:
    """Write `episode` as the next file after the highest index in `directory` (gaps are never
    filled); an existing file is never replaced, not even by a second writer in the same folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"obs/{k}": v for k, v in episode.observations.items()}
    arrays.update(actions=episode.actions, rewards=episode.rewards, meta=np.array(json.dumps(episode.meta)))
    fd, tmp = create_beside(directory, prefix=".episode_", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # a full disk can surface at the write, the flush, the fsync or the close
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        index = 0
        while True:
            files = episode_files(directory)
            index = max(index, files[-1][0] + 1 if files else 0)
            path = directory / f"episode_{index:06d}.npz"
            try:
                os.link(tmp, path)  # atomic, and fails where the name exists (os.replace would overwrite)
                fsync_dir(directory)
                return path
            except FileExistsError:
                index += 1  # another writer took this index first
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class NoEpisodesError(UserError, FileNotFoundError):
    """A folder meant to hold episodes holds none; the message says how to record some."""


def load_episode(path: str | Path) -> Episode:
    try:
        with np.load(path, allow_pickle=False) as data:
            observations = {k[4:]: data[k] for k in data.files if k.startswith("obs/")}
            return Episode(observations, data["actions"], data["rewards"], json.loads(str(data["meta"])))
    except Exception as err:
        raise RecordingError(f"The episode file '{path}' is unreadable ({type(err).__name__}); move it out of the folder "
                             "or re-record it.") from err


def load_episode_folder(directory: str | Path) -> list[Episode]:
    """The `.npz` episodes in `directory`, in order."""
    files = [path for _, path in episode_files(directory)]
    if not files:
        raise NoEpisodesError(
            f"No episodes in '{directory}'; record some first, e.g. `dsrl-real collect-demos demos.out_dir={directory}`."
        )
    return [load_episode(f) for f in files]
