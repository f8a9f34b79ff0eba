"""Every file the project writes gets the mode a plain open() gives under the process umask (0644
under umask 022), so that a lab-mate can read recordings, checkpoints and metrics; not the 0600
of tempfile.mkstemp."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dsrl_real.analysis.metrics import write_video
from dsrl_real.data.episodes import Episode, save_episode
from dsrl_real.storage import atomic_file, write_atomic

MODES = [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)]


@pytest.fixture
def umask():
    """`umask(value)` sets the process umask for the test; the old one comes back after it."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def file_modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): mode(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("mask", "expected"), MODES)
def test_atomic_writers_give_the_mode_of_a_plain_open(tmp_path, umask, mask, expected):
    umask(mask)
    with open(tmp_path / "plain", "wb"):
        pass
    write_atomic(tmp_path / "written.json", b"{}")
    with atomic_file(tmp_path / "sub" / "streamed.bin") as f:
        f.write(b"x")
    save_episode(tmp_path / "episodes", Episode(observations={"proprio": np.zeros((2, 7), np.float32)},
                                                actions=np.zeros((1, 7), np.float32), rewards=np.zeros(1, np.float32)))
    write_video(tmp_path / "videos" / "clip.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=5)
    modes = file_modes(tmp_path)
    assert len(modes) == 5 and set(modes.values()) == {expected}, {name: oct(m) for name, m in modes.items()}


def test_an_overwritten_file_gets_the_umask_mode_too(tmp_path, umask):
    target = tmp_path / "LATEST"
    umask(0o077)
    write_atomic(target, b"a")
    umask(0o022)
    write_atomic(target, b"b")  # a new file renamed over the old one, as a plain open() would create it
    assert mode(target) == 0o644 and target.read_bytes() == b"b"


@pytest.mark.parametrize(("mask", "expected"), MODES[:2])
def test_every_file_of_a_training_run_gets_the_umask_mode(tmp_path, umask, fast_trainer, mask, expected):
    """Checkpoints, metrics, the learning curve, the recording and the lock file alike."""
    umask(mask)
    trainer = fast_trainer(tmp_path, "train.env_steps=12", "train.checkpoint_every_episodes=1")
    trainer.run()
    trainer.save_checkpoint()
    modes = file_modes(tmp_path)
    assert any("checkpoints" in name for name in modes) and "metrics.jsonl" in modes
    assert {name for name, m in modes.items() if m != expected} == set()
