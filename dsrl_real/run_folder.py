"""What a training run leaves in its folder (train.out_dir): its own files, and the recording that
a run of recorded demonstrations has too."""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = "checkpoints"
LATEST = "LATEST"
TRAINING_FILES = (LATEST, CHECKPOINTS, "metrics.jsonl", "wandb", "wandb_id", "learning_curve.png")
RECORDING_FILES = ("meta", "data", "videos")
RUN_FILES = TRAINING_FILES + RECORDING_FILES  # a fresh run refuses a folder holding any of them


def present(folder: str | Path, names: tuple[str, ...]) -> list[str]:
    """Those of `names` that exist in `folder`, in the order given."""
    return [name for name in names if (Path(folder) / name).exists()]
