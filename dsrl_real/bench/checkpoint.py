"""`dsrl-real bench checkpoint`: the seconds a checkpoint's replay buffer costs per episode, against the buffer's size.

For each size the buffer is filled with synthetic episodes (two 64x64 RGB cameras as uint8, proprio, features, noise
and chunks of the paper's shapes), then episodes are added one at a time, each followed by a checkpoint written by
train/checkpoints.py (staged, manifest with checksums, renamed into place, the older pruned) into a temporary run
folder: once with the earlier format (the whole buffer rewritten into one replay.npz) and once with segments (only
the segments written to since the previous checkpoint; the rest hard-linked from it). The agent's file is left out:
its cost does not depend on the buffer.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data import replay_files, replay_npz
from ..data.replay import SEGMENT_SLOTS, ReplayBuffer  # noqa: F401 - SEGMENT_SLOTS: the default, patchable here
from ..storage import write_atomic
from ..train import checkpoints

SIZES = (1_000, 10_000, 50_000)  # time indices filled
CAMERAS, FRAME, PROPRIO, FEATURES, CHUNK = ("third_person_image", "wrist_image"), (64, 64, 3), 7, 13, (4, 7)


def _episode(rng: np.random.Generator, T: int) -> dict:
    frames = rng.integers(0, 256, (T + 1, *FRAME), dtype=np.uint8)
    return dict(observations={**{k: np.roll(frames, i, axis=0) for i, k in enumerate(CAMERAS)},
                              "proprio": rng.normal(size=(T + 1, PROPRIO)).astype(np.float32)},
                features=rng.normal(size=(T + 1, FEATURES)).astype(np.float32), noise=rng.normal(size=(T, *CHUNK)).astype(np.float32),
                chunks=rng.normal(size=(T, *CHUNK)).astype(np.float32), rewards=np.zeros(T, np.float32), terminated=False,
                truncated=True)


def _write(buf: ReplayBuffer, segmented: bool):
    def write_files(folder: Path) -> None:
        if segmented:
            earlier = checkpoints.Earlier(folder)
            replay_files.save(buf, folder / checkpoints.REPLAY, reuse=lambda name: earlier.link(f"{checkpoints.REPLAY}/{name}", folder))
        else:
            replay_npz.write(buf, folder / checkpoints.REPLAY_NPZ)
        write_atomic(folder / "counters.json", b"{}")

    return write_files


def _measure(buf: ReplayBuffer, rng: np.random.Generator, segmented: bool, episodes: int, T: int, first: int) -> dict:
    seconds, written = [], []
    with tempfile.TemporaryDirectory(prefix="dsrl-bench-checkpoint-") as tmp:
        out = Path(tmp)
        checkpoints.save(out, first, _write(buf, segmented))  # the previous checkpoint the first measured one follows
        for n in range(first + 1, first + 1 + episodes):
            buf.add_episode(**_episode(rng, T))
            start = time.perf_counter()
            folder = checkpoints.save(out, n, _write(buf, segmented))
            seconds.append(time.perf_counter() - start)
            written.append(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.stat().st_nlink == 1))
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"seconds_per_episode": round(statistics.median(seconds), 4), "seconds_max": round(max(seconds), 4),
            "bytes_written_per_episode": int(statistics.median(written)), "checkpoint_bytes": int(total)}


def bench_checkpoint(sizes: tuple[int, ...] | None = None, episodes: int = 3, chunk_steps: int = 25,
                     segment_slots: int | None = None) -> dict:
    """Per buffer size (time indices filled): the median seconds of one checkpoint after one more episode, and the bytes
    it wrote, for the earlier single-file format and for segments."""
    rng = np.random.default_rng(0)
    sizes, segment_slots, results = sizes or SIZES, segment_slots or SEGMENT_SLOTS, []
    for size in sizes:
        buf = ReplayBuffer(size + 2 * episodes * (chunk_steps + 1), segment_slots)  # room for the measured episodes: no wrap
        while buf.num_time_indices + chunk_steps + 1 <= size:
            buf.add_episode(**_episode(rng, chunk_steps))
        row = {"slots": buf.num_time_indices, "buffer_bytes": int(sum(buf.storage_bytes().values()) * buf.num_time_indices / buf.capacity)}
        first = buf.num_episodes_started
        row["single_file"] = _measure(buf, rng, False, episodes, chunk_steps, first)
        row["segments"] = _measure(buf, rng, True, episodes, chunk_steps, first + episodes)
        row["speedup"] = round(row["single_file"]["seconds_per_episode"] / max(row["segments"]["seconds_per_episode"], 1e-9), 1)
        results.append(row)
        del buf
    return {"cameras": {k: list(FRAME) for k in CAMERAS}, "chunk_steps_per_episode": chunk_steps, "segment_slots": segment_slots,
            "episodes_measured": episodes, "sizes": results}
