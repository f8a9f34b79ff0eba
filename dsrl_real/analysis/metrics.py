"""Run metrics: JSONL on disk (always), a learning-curve PNG, episode videos as mp4, and wandb
(offline by default, so it works with no account; `wandb sync` uploads later).

metrics.jsonl is only ever appended to, one record per line. A crash mid-append can leave a torn
last line: every reader here (`read_records`) skips it, and `MetricsLogger` removes it before its
first append, so the next record starts on a line of its own. (The trainer writes a record only
after the checkpoint that holds it; the checkpoint keeps the record too, and a resumed run appends
whichever of those records the file lacks, so the torn one comes back whole.) Every other file
here is written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingExtraError, UserError
from ..storage import atomic_file, create_beside, write_atomic

log = logging.getLogger("dsrl_real.analysis.metrics")
WANDB_HINT = 'pip install -e ".[wandb]"'  # wandb is an extra: the default install has none


class MetricsError(UserError, ValueError):
    """metrics.jsonl is damaged somewhere other than its last line."""


def read_records(path: str | Path) -> list[dict]:
    """Every record of a metrics.jsonl (none when it does not exist), skipping a torn last line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            if number == len(lines):  # the last line, unterminated: a write a crash cut short
                break
            raise MetricsError(f"Line {number} of '{path}' is not a JSON record ({err}); "
                               f"restore the file from a copy or remove that line.") from err
        records.append(record)
    return records


def repair_torn_tail(path: Path) -> int:
    """Cut an unterminated, unreadable last line (a crash mid-append) off `path`; a complete record
    that only lacks its newline gets one. Returns how many bytes were cut."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return 0
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return 0
            f.seek(0)
            data = f.read()
    except FileNotFoundError:
        return 0
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:
        os.truncate(path, start)
        return size - start
    with path.open("ab") as f:
        f.write(b"\n")
    return 0


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    """An mp4, written beside its final name and renamed into place (never half a video)."""
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_beside(path.parent, prefix=path.stem, suffix=".tmp.mp4")
    os.close(fd)
    try:
        iio.imwrite(tmp, np.asarray(frames, np.uint8), fps=fps, plugin="pyav", codec="libx264")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plot_learning_curve(records: list[dict], path: Path, title: str = "DSRL fine-tuning") -> Path:
    """Evaluation success rate (with its 95% interval) against environment steps, one line per label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label in sorted({r.get("label", "") for r in records}):
        rows = sorted((r for r in records if r.get("label", "") == label), key=lambda r: r["env_steps"])
        steps = [r["env_steps"] for r in rows]
        ax.plot(steps, [r["success_rate"] for r in rows], marker="o", label=label or None)
        if rows and "ci95" in rows[0]:
            ax.fill_between(steps, [r["ci95"][0] for r in rows], [r["ci95"][1] for r in rows], alpha=0.2)
    ax.set(xlabel="environment steps", ylabel="success rate", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    if any(r.get("label") for r in records):
        ax.legend()
    return save_figure(fig, path)


def plot_seed_curves(curves: dict[str, dict], path: Path, title: str) -> Path:
    """Learning curves over seeds (analysis/seeds.py's curve_over_seeds, one per label): the mean success
    rate with a band of ± one standard deviation across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        steps, sd = np.array(curve["env_steps"]), np.array(curve["std"])
        mean = np.array([np.nan if m is None else m for m in curve["mean"]], float)
        seeds = max(curve["n_seeds"], default=0)
        ax.plot(steps, mean, marker="o", label=f"{label} ({seeds} seed{'s' if seeds != 1 else ''})")
        ax.fill_between(steps, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), alpha=0.2)
    ax.set(xlabel="environment steps", ylabel="success rate (mean ± s.d. over seeds)", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    return save_figure(fig, path)


class MetricsLogger:
    """`log(kind, **values)` appends a line to metrics.jsonl and forwards to wandb when enabled."""

    def __init__(self, out_dir: str | Path, wandb_mode: str = "offline", config: dict | None = None, project: str = "dsrl_real"):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "metrics.jsonl"
        self._repaired = False
        self._wandb = None
        if wandb_mode != "disabled":
            try:
                import wandb
            except ImportError as exc:
                if wandb_mode == "online":  # asked for by name: a run that silently never uploads would be worse
                    raise MissingExtraError(f'train.wandb=online needs wandb, which is not installed: {WANDB_HINT}, '
                                            'or set train.wandb=offline or disabled.') from exc
                print(f"wandb is not installed; metrics go to metrics.jsonl only ({WANDB_HINT} to keep a wandb run too).",
                      file=sys.stderr)
            else:
                self._wandb = wandb.init(project=project, mode=wandb_mode, dir=str(self.out_dir), config=config or {},
                                         resume="allow", id=self._run_id())

    def _run_id(self) -> str:
        """One wandb run per run directory, so a resumed run continues the same wandb run."""
        id_file = self.out_dir / "wandb_id"
        if not id_file.exists():
            write_atomic(id_file, f"dsrl-{int(time.time())}".encode())
        return id_file.read_text().strip()

    @staticmethod
    def record(kind: str, step: int, **values: Any) -> dict:
        """A record as it will be read back from metrics.jsonl (numpy values as plain numbers)."""
        return json.loads(json.dumps({"kind": kind, "step": step, "time": time.time(), **values}, default=float))

    def log(self, kind: str, step: int, **values: Any) -> None:
        self.write(self.record(kind, step, **values))

    def write(self, record: dict) -> None:
        """Append one record (made by `record`), after cutting off a torn last line a crash left."""
        if not self._repaired:
            cut = repair_torn_tail(self.path)
            if cut:
                log.warning(f"{self.path} ended in a line torn by a crash ({cut} bytes); it was cut off before appending.")
            self._repaired = True
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            values = {k: v for k, v in record.items() if k not in ("kind", "step", "time")}
            flat = {f"{record['kind']}/{k}": v for k, v in values.items() if isinstance(v, (int, float, bool))}
            self._wandb.log(flat, step=record["step"])

    def ensure_logged(self, records: list[dict]) -> int:
        """Append those of `records` that metrics.jsonl lacks (a crash came between a checkpoint and
        its records' append); returns how many."""
        have = {json.dumps(r, sort_keys=True) for r in self._read()}
        missing = [r for r in records if json.dumps(r, sort_keys=True) not in have]
        for r in missing:
            self.write(r)
        return len(missing)

    def video(self, name: str, step: int, frames: np.ndarray, fps: float) -> Path:
        path = write_video(self.out_dir / "videos" / f"{name}_{step:07d}.mp4", frames, fps)
        if self._wandb is not None:
            import wandb

            self._wandb.log({f"video/{name}": wandb.Video(str(path), format="mp4")}, step=step)
        return path

    def records(self, kind: str) -> list[dict]:
        return [r for r in self._read() if r.get("kind") == kind]

    def _read(self) -> list[dict]:
        return read_records(self.path)

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_file(path) as f:
            fig.savefig(f, dpi=100, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
