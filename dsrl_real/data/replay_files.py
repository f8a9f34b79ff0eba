"""A replay buffer on disk: saved as a folder of segments (replay_segments.py); loaded from one, or from the single
replay.npz of earlier checkpoints (replay_npz.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import replay_npz, replay_segments
from .replay import ReplayBuffer


def save(buf: ReplayBuffer, folder: str | Path, reuse: Callable[[str], bool] | None = None) -> Path:
    """Write `buf` into `folder` as segments; `reuse(name)` may put an unchanged segment file there (a hard link
    from an earlier checkpoint) instead of its being written (default: a file of that name already there)."""
    return replay_segments.write(buf, folder, reuse)


def load(path: str | Path) -> ReplayBuffer:
    """The buffer saved at `path`: a folder of segments or an earlier .npz file. Files that cannot be read
    (missing, truncated, corrupt, not a buffer) raise `ReplayFileError`, one sentence naming the file."""
    path, buf = Path(path), ReplayBuffer(2)
    if path.is_dir():
        replay_segments.read(buf, path)
    elif path.is_file():
        replay_npz.read(buf, path)
    else:
        raise FileNotFoundError(f"No replay buffer at '{path}'; check the path or start with an empty buffer.")
    return buf
