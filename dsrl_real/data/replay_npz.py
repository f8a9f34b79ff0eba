"""The replay buffer's earlier file format: the whole buffer in one replay.npz, rewritten at every checkpoint.

Checkpoints written before the segmented format (replay_segments.py) hold it, and `ReplayBuffer.load` still
reads it. `write` stays for `dsrl-real bench checkpoint`, which measures what it cost, and for tests.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..storage import atomic_file
from .replay import ReplayBuffer, ReplayFileError

FORMAT = "dsrl_real.data.replay.v1"


def write(buf: ReplayBuffer, path: str | Path) -> Path:
    """The buffer's filled slots in one .npz file, written atomically (temp file beside it, then os.replace)."""
    path = Path(path)
    columns = buf.columns()
    keys = [name[len("obs/"):] for name in columns if name.startswith("obs/")]
    layout = buf.layout()
    meta = {"format": FORMAT, "capacity": buf.capacity, "ptr": layout["ptr"], "size": layout["size"],
            "next_episode_id": layout["next_episode_id"], "allocated": bool(columns), "obs_keys": keys}
    arrays: dict[str, np.ndarray] = {"meta": np.asarray(json.dumps(meta))}
    n = layout["size"]  # slots [0, size) are the filled ones (writing starts at 0)
    for i, k in enumerate(keys):
        arrays[f"obs_{i}"] = columns[f"obs/{k}"][:n]
        arrays[f"shape_obs_{i}"] = np.asarray(columns[f"obs/{k}"].shape[1:], np.int64)
    for name, v in columns.items():
        if not name.startswith("obs/"):
            arrays[name], arrays[f"shape_{name}"] = v[:n], np.asarray(v.shape[1:], np.int64)
    with atomic_file(path) as f:
        np.savez(f, **arrays)
    return path


def read(buf: ReplayBuffer, path: Path) -> None:
    """Fill the fresh `buf` from the file; one that cannot be read raises ReplayFileError naming it."""
    try:
        _read(buf, path)
    except ReplayFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError, OSError) as err:
        raise ReplayFileError(f"The replay buffer file '{path}' is truncated or corrupt ({type(err).__name__}); "
                              "restore it from a copy.") from err


def _read(buf: ReplayBuffer, path: Path) -> None:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ReplayFileError(f"'{path}' is not a dsrl_real replay buffer (format {found!r}).")
        size = int(meta["size"])
        layout = {"capacity": meta["capacity"], "ptr": meta["ptr"], "size": size, "next_episode_id": meta["next_episode_id"],
                  "written": size, "segment_slots": buf.segment_slots, "columns": {}}
        sources: dict[str, str] = {}
        if meta["allocated"]:
            for i, k in enumerate(meta["obs_keys"]):
                sources[f"obs/{k}"] = f"obs_{i}"
                layout["columns"][f"obs/{k}"] = {"shape": data[f"shape_obs_{i}"].tolist(), "dtype": data[f"obs_{i}"].dtype.str}
            for name in ("features", "noise", "chunks", "reward", "terminated", "truncated", "has_noise", "starts", "episode"):
                sources[name] = name
                layout["columns"][name] = {"shape": data[f"shape_{name}"].tolist(), "dtype": data[name].dtype.str}

        def fill(columns: dict[str, np.ndarray]) -> None:
            for name, array in columns.items():
                array[:size] = data[sources[name]]

        buf.adopt(layout, fill)
