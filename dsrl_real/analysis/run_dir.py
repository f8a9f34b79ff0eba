"""The run folder `report` and `audit` read: the folder given, or the one run inside it. The folder
`dsrl-real demo` prints holds demos/, policy/ and its training run in dsrl/."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import UserError
from ..recording.reader import is_recording
from ..run_folder import TRAINING_FILES, present

log = logging.getLogger("dsrl_real.analysis.run_dir")


def holds_run(folder: Path) -> bool:
    """Recorded episodes or a training run's metrics."""
    return (folder / "metrics.jsonl").is_file() or is_recording(folder)


def find_run(folder: str | Path, error: type[UserError]) -> Path:
    """`folder` when it holds a run (or holds nothing the caller could read: its own message says so);
    else the one subfolder holding a run, preferring the one training run beside recordings of
    demonstrations. Several: `error`, naming them."""
    folder = Path(folder)
    if holds_run(folder) or not folder.is_dir():
        return folder
    runs = sorted((sub for sub in folder.iterdir() if sub.is_dir() and holds_run(sub)), key=lambda sub: sub.name)
    trained = [sub for sub in runs if present(sub, TRAINING_FILES)]
    if len(runs) > 1 and len(trained) == 1:
        runs = trained
    if len(runs) > 1:
        raise error(f"'{folder}' holds no run of its own but its subfolders hold several "
                    f"({', '.join(sub.name for sub in runs)}); give the folder of one of them.")
    if runs:
        log.warning(f"'{folder}' holds no run of its own; reading the one in '{runs[0]}'.")
        return runs[0]
    return folder
