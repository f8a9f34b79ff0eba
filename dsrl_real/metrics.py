"""Run metrics: JSONL on disk (always), a learning-curve PNG, episode videos as mp4, and wandb
(offline by default, so it works with no account; `wandb sync` uploads later)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.asarray(frames, np.uint8), fps=fps, plugin="pyav", codec="libx264")
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


class MetricsLogger:
    """`log(kind, **values)` appends a line to metrics.jsonl and forwards to wandb when enabled."""

    def __init__(self, out_dir: str | Path, wandb_mode: str = "offline", config: dict | None = None, project: str = "dsrl_real"):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "metrics.jsonl"
        self._wandb = None
        if wandb_mode != "disabled":
            try:
                import wandb
            except ImportError:
                print("wandb is not installed; metrics go to metrics.jsonl only (pip install wandb to enable it).")
            else:
                self._wandb = wandb.init(project=project, mode=wandb_mode, dir=str(self.out_dir), config=config or {},
                                         resume="allow", id=self._run_id())

    def _run_id(self) -> str:
        """One wandb run per run directory, so a resumed run continues the same wandb run."""
        id_file = self.out_dir / "wandb_id"
        if not id_file.exists():
            id_file.write_text(f"dsrl-{int(time.time())}")
        return id_file.read_text().strip()

    def log(self, kind: str, step: int, **values: Any) -> None:
        record = {"kind": kind, "step": step, "time": time.time(), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
        if self._wandb is not None:
            flat = {f"{kind}/{k}": v for k, v in values.items() if isinstance(v, (int, float, bool))}
            self._wandb.log(flat, step=step)

    def video(self, name: str, step: int, frames: np.ndarray, fps: float) -> Path:
        path = write_video(self.out_dir / "videos" / f"{name}_{step:07d}.mp4", frames, fps)
        if self._wandb is not None:
            import wandb

            self._wandb.log({f"video/{name}": wandb.Video(str(path), format="mp4")}, step=step)
        return path

    def records(self, kind: str) -> list[dict]:
        if not self.path.exists():
            return []
        return [r for r in map(json.loads, self.path.read_text().splitlines()) if r["kind"] == kind]

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def save_figure(fig, path: Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
