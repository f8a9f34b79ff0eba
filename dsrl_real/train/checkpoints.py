"""A run folder's checkpoints: `checkpoints/episode_NNNNNN`, each complete or absent, and `LATEST`.

Saving builds the folder under a hidden staging name: every file written atomically, then a
manifest (sha256 and size of every file) written last, then one rename puts the folder in place
and `LATEST` is moved to it. A crash or a full disk at any point leaves the earlier checkpoints as
they were, plus at most a staging folder, which the next save removes (the run folder's lock,
runlock.py, guarantees no other process is writing one). The last two checkpoints are kept.

Files that did not change since the previous checkpoint (the replay buffer's full segments,
data/replay_segments.py) are hard-linked from it (`Earlier`), copied where the file system cannot
link, and keep its manifest entries, so a checkpoint costs what changed, not the whole buffer. A
linked file is the same file in both checkpoints: pruning the older one leaves it to the newer.

Resuming takes the newest checkpoint whose files match its manifest and load; a corrupt one is
skipped with a sentence naming the file, so a flipped bit or a truncated file falls back to the
previous checkpoint. `LATEST` is written for people and tools; it is never followed, so it cannot
lead out of the run folder. Checkpoints written before manifests existed load without checksums.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..run_folder import CHECKPOINTS, LATEST, RUN_FILES, present
from ..storage import atomic_file, fsync_dir, sha256_file, write_atomic

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dsrl_real.run_checkpoint.v1"
NAME = re.compile(r"episode_(\d{6,})")
NO_LINKS = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)  # where a file system cannot link
STAGING, PRUNING = ".staging-", ".pruning-"  # hidden names of folders on their way in or out

REPLAY, REPLAY_NPZ = "replay", "replay.npz"  # a checkpoint's replay buffer: a folder of segments, or the earlier single file

log = logging.getLogger("dsrl_real.train.trainer")
_saving = threading.Lock()  # one save at a time in a process: a save removes the staging folders it finds


def folder_name(episodes: int) -> str:
    return f"episode_{episodes:06d}"


def listed(out_dir: Path) -> list[Path]:
    """The run's checkpoint folders, newest (most episodes) first."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := NAME.fullmatch(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def replay_name(folder: Path) -> str:
    """The name of the replay buffer in the checkpoint `folder`: its segments' folder, or in a checkpoint written
    before segments existed, the single file."""
    return REPLAY_NPZ if not (Path(folder) / REPLAY).exists() and (Path(folder) / REPLAY_NPZ).exists() else REPLAY


def earlier_run_files(out_dir: Path) -> list[str]:
    return present(out_dir, RUN_FILES)


def problem(folder: Path) -> str | None:
    """Why the checkpoint in `folder` must not be loaded (one clause naming the file), or None. A
    folder without a manifest (written before manifests existed) passes; loading it checks it."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        assert manifest["format"] == MANIFEST_FORMAT and isinstance(files, dict) and files
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return f"{folder.name}/{MANIFEST} is unreadable"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{folder.name}/{name} is missing"
        size = path.stat().st_size
        if size < entry["bytes"]:
            return f"{folder.name}/{name} is truncated ({size} of {entry['bytes']} bytes)"
        if size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            return f"{folder.name}/{name} does not match its checksum (a corrupt file)"
    return None


class Earlier:
    """The run's newest checkpoint before the one being staged in `staging`, whose files (those its manifest lists)
    the new one may take instead of writing them again; `folder` None when there is none."""

    def __init__(self, staging: Path):
        staging, self.folder, self.entries = Path(staging), None, {}
        named = NAME.fullmatch(staging.name.removeprefix(STAGING))
        episodes = int(named.group(1)) if named else -1  # not a checkpoint being staged: nothing to take
        for folder in listed(staging.parent.parent):
            if int(NAME.fullmatch(folder.name).group(1)) < episodes:
                self.folder, self.entries = folder, _manifest_files(folder) or {}
                break

    def names(self, under: str) -> set[str]:
        """The names of its files in the subfolder `under` (as its manifest lists them)."""
        return {name[len(under) + 1:] for name in self.entries if name.startswith(f"{under}/")}

    def link(self, name: str, into: Path) -> bool:
        """Put its file `name` (a path inside the checkpoint folder) at `into / name`: a hard link, or a copy where
        the file system cannot link; False when it has no such file of the size its manifest says."""
        entry, src = self.entries.get(name), (self.folder / name if self.folder else None)
        if entry is None or not src.is_file() or src.stat().st_size != entry["bytes"]:
            return False
        dst = Path(into) / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError as err:
            if err.errno not in NO_LINKS:  # a full disk, an I/O error: the save fails, as a write would
                raise
            with open(src, "rb") as f, atomic_file(dst) as out:  # no hard links here: a copy, written atomically
                shutil.copyfileobj(f, out, 1 << 20)
        return True

    def entry(self, name: str, path: Path) -> dict | None:
        """Its manifest entry for `name` if `path` is that very file (hard-linked), else None."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        try:
            return entry if os.path.samefile(path, self.folder / name) else None
        except OSError:
            return None


def _manifest_files(folder: Path) -> dict[str, dict] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        return files if manifest["format"] == MANIFEST_FORMAT and isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _files(folder: Path) -> list[tuple[str, Path]]:
    """Every file under `folder`, by its path inside it ('replay/index.json'), sorted."""
    return sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())


def save(out_dir: Path, episodes: int, write_files: Callable[[Path], None]) -> Path:
    """The checkpoint after `episodes` episodes: `write_files(folder)` writes its files (it may take
    unchanged ones from the previous checkpoint with `Earlier(folder)`). A verified
    checkpoint of the same episode count is kept as it is: nothing has been learned since (only
    an unfinished episode's random draws, which a resume replays)."""
    with _saving:
        return _save(Path(out_dir), episodes, write_files)


def _save(out_dir: Path, episodes: int, write_files: Callable[[Path], None]) -> Path:
    root = out_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    final = root / folder_name(episodes)
    if final.is_dir() and (final / MANIFEST).exists() and problem(final) is None:
        _point_latest(out_dir, final)
        return final
    staging = root / f"{STAGING}{final.name}"
    try:
        staging.mkdir()
        write_files(staging)
        earlier = Earlier(staging)
        files = {name: earlier.entry(name, p) or {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                 for name, p in _files(staging)}
        write_atomic(staging / MANIFEST, json.dumps({"format": MANIFEST_FORMAT, "episodes": episodes, "files": files},
                                                    indent=1).encode())
        if final.exists():  # corrupt, or written before manifests: kept under another name, never deleted
            aside = root / f"{final.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            os.rename(final, aside)
            log.warning(f"The checkpoint {final} could not be verified; it was kept as {aside.name} and a new one written.")
        os.rename(staging, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _point_latest(out_dir, final)
    try:
        _prune(root, episodes)
    except OSError as err:  # the new checkpoint is safe; an old one stays a while longer
        log.warning(f"Removing an old checkpoint in {root} failed ({err}); the next checkpoint tries again.")
    return final


def _point_latest(out_dir: Path, final: Path) -> None:
    latest = out_dir / LATEST
    if not latest.is_file() or latest.read_bytes() != final.name.encode():
        write_atomic(latest, final.name.encode())


def _prune(root: Path, episodes: int) -> None:
    """Keep the checkpoint just written and the one before it; later-numbered folders are never
    touched, nor anything not named episode_NNNNNN."""
    older = [p for p in listed(root.parent) if int(NAME.fullmatch(p.name).group(1)) < episodes]
    for old in older[1:]:
        gone = root / f"{PRUNING}{old.name}"
        os.rename(old, gone)
        shutil.rmtree(gone)


def _remove_leftovers(out_dir: Path) -> None:
    """Staging or pruning folders and temporary LATEST files a crash left; only this run's own
    hidden names (the caller holds the run folder)."""
    root = out_dir / CHECKPOINTS
    for p in root.iterdir():
        if p.name.startswith((STAGING, PRUNING)) and p.is_dir():
            shutil.rmtree(p)
    for p in out_dir.glob(f"{LATEST}*.tmp"):
        p.unlink()


def pointer_note(out_dir: Path, chosen: Path) -> str | None:
    """A sentence when LATEST does not name `chosen` (the checkpoint being resumed), else None."""
    latest = Path(out_dir) / LATEST
    if not latest.is_file():
        return None
    text = latest.read_text(errors="replace").strip()
    if text == chosen.name:
        return None
    if not NAME.fullmatch(text):
        return f"{latest} names {text!r}, which is not a checkpoint of this run; it was ignored and {chosen.name} resumed."
    return None
