"""The replay buffer on disk as a folder of segments, so that a checkpoint rewrites only what changed.

    index.json                          {"format", the buffer's layout (ReplayBuffer.layout), "segments": [
                                         {"file", "slots", "generation"}, ...]} (segment k starts at slot k * segment_slots)
    segment_000003_g000000012345.npz    arrays c0, c1, ... (the layout's columns in order), one row per filled slot

A segment's file name carries its index and its generation (ReplayBuffer.segments): within a run one name always
holds the same contents, so a file once written is never changed. Saving again (the next checkpoint) writes only
the segments written to since, the head of the ring; `reuse(name)` provides the others, e.g. as hard links from
the previous checkpoint (train/checkpoints.py). index.json is written last; a folder saved into again keeps only
the segments its new index names.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import atomic_file, fsync_dir, write_atomic
from .replay import ReplayBuffer, ReplayFileError

FORMAT = "dsrl_real.data.replay_segments.v1"
INDEX = "index.json"
SEGMENT = re.compile(r"segment_\d{6,}_g\d{12,}\.npz")


def segment_name(k: int, generation: int) -> str:
    return f"segment_{k:06d}_g{generation:012d}.npz"


def index(buf: ReplayBuffer) -> dict[str, Any]:
    """What index.json holds for the buffer as it is now."""
    segments = [{"file": segment_name(k, gen), "slots": slots, "generation": gen}
                for k, (_, slots, gen) in enumerate(buf.segments())]
    return {"format": FORMAT, **buf.layout(), "segments": segments}


def _write_segment(buf: ReplayBuffer, k: int, f) -> None:
    first, slots, _ = buf.segments()[k]
    np.savez(f, **{f"c{i}": v[first:first + slots] for i, v in enumerate(buf.columns().values())})


def encode(buf: ReplayBuffer, have: set[str] = frozenset()) -> dict[str, bytes]:
    """The folder's files as bytes (name -> bytes), leaving out the segments named in `have`."""
    meta = index(buf)
    out = {INDEX: json.dumps(meta).encode()}
    for k, entry in enumerate(meta["segments"]):
        if entry["file"] not in have:
            f = io.BytesIO()
            _write_segment(buf, k, f)
            out[entry["file"]] = f.getvalue()
    return out


def write(buf: ReplayBuffer, folder: str | Path, reuse: Callable[[str], bool] | None = None) -> Path:
    """Save the buffer into `folder`. A segment file is written (atomically) unless `reuse(name)` puts it there
    (default: it is there already); then index.json; then segment files the index does not name are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reuse = reuse or (lambda name: (folder / name).is_file())
    meta, reused = index(buf), False
    for k, entry in enumerate(meta["segments"]):
        if reuse(entry["file"]):
            reused = True
        else:
            with atomic_file(folder / entry["file"]) as f:
                _write_segment(buf, k, f)
    if reused:
        fsync_dir(folder)  # hard links `reuse` made
    write_atomic(folder / INDEX, json.dumps(meta).encode())
    named = {entry["file"] for entry in meta["segments"]}
    for p in folder.iterdir():
        if SEGMENT.fullmatch(p.name) and p.name not in named:
            p.unlink()
    return folder


def read(buf: ReplayBuffer, folder: Path) -> None:
    """Fill the fresh `buf` from `folder`; a missing or damaged file raises ReplayFileError, one sentence naming it."""
    path = folder / INDEX
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ReplayFileError(f"'{path}' is not the index of a dsrl_real replay buffer (format {found!r}).")
        S, size, segments = int(meta["segment_slots"]), int(meta["size"]), meta["segments"]
        expected = [min(S, size - k * S) for k in range(-(-size // S))] if S > 0 else None
        if expected is None or [int(e["slots"]) for e in segments] != expected \
                or any(not SEGMENT.fullmatch(e["file"]) for e in segments):
            raise ValueError("its segments do not cover the buffer's filled slots")
    except FileNotFoundError as err:
        raise ReplayFileError(f"The replay buffer folder '{folder}' has no {INDEX}; restore the folder from a copy.") from err
    except ReplayFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ReplayFileError(f"The replay buffer index '{path}' is corrupt ({type(err).__name__}); restore it from a copy.") from err

    def fill(columns: dict[str, np.ndarray]) -> None:
        arrays = list(columns.values())
        for k, entry in enumerate(segments):
            _read_segment(folder / entry["file"], arrays, k * S, int(entry["slots"]))

    try:
        buf.adopt(meta, fill, [int(e["generation"]) for e in segments])
    except ReplayFileError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise ReplayFileError(f"The replay buffer index '{path}' is corrupt ({type(err).__name__}); restore it from a copy.") from err


def _read_segment(path: Path, arrays: list[np.ndarray], first: int, slots: int) -> None:
    if not path.is_file():
        raise ReplayFileError(f"The replay buffer segment '{path}' is missing; restore the checkpoint folder from a copy.")
    try:
        with np.load(path, allow_pickle=False) as data:
            if sorted(data.files) != sorted(f"c{i}" for i in range(len(arrays))):
                raise KeyError("its arrays are not the index's columns")
            for i, target in enumerate(arrays):
                part = data[f"c{i}"]
                if part.shape != (slots, *target.shape[1:]) or part.dtype != target.dtype:
                    raise ValueError(f"c{i} is {part.shape} {part.dtype}")
                target[first:first + slots] = part
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError, OSError) as err:
        raise ReplayFileError(f"The replay buffer segment '{path}' is truncated or corrupt ({type(err).__name__}); "
                              "restore the checkpoint folder from a copy.") from err
