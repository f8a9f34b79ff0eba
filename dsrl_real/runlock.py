"""One writer per run folder: an exclusive `flock` on `<folder>/.dsrl_real.lock`.

Whatever writes into a run folder (the trainer with recording on or off, `dsrl-real eval`, a
`RunRecorder` of its own) holds this lock while it writes; a second writer is refused with one
sentence naming the holder (pid, host and start time, which the holder keeps in the lock file).

A crash never wedges the next run: the kernel releases a `flock` when the last descriptor of the
open file goes away, which a process's death (SIGKILL included) does. The stale holder line left in
the file is overwritten by the next holder. Locks belong to an open file, so a second `RunLock` on
the same folder is refused even inside the same process. (On a network file system `flock` may not
reach other machines; keep run folders on a local disk.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .errors import UserError

LOCK_FILE = ".dsrl_real.lock"


class FolderInUseError(UserError):
    """Another process writes into the run folder."""


class RunLock:
    """`lock = RunLock.acquire(folder, "training")`; `lock.release()` (also `with RunLock.acquire(...)`)."""

    def __init__(self, folder: Path, fd: int):
        self.folder, self._fd = folder, fd

    @classmethod
    def acquire(cls, folder: str | Path, purpose: str, remedy: str = "choose another run folder",
                error: type[Exception] = FolderInUseError) -> RunLock:
        """Hold `folder` for this process or raise `error` (one sentence ending in `remedy`)."""
        folder = Path(folder)
        try:
            if not folder.is_dir():
                folder.mkdir(parents=True)
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise error(f"Cannot write into '{folder}' ({err.strerror or type(err).__name__}); {remedy}.") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise error(f"'{folder}' is in use by {holder}; stop it first or {remedy}.") from err
        except BaseException:
            os.close(fd)
            raise
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(), "purpose": purpose}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the refusal cannot name us
        return cls(folder, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no stale holder line after a clean exit
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder_of(folder: str | Path) -> dict | None:
    """The holder line in `folder`'s lock file (stale once its process is gone), or None."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict | None:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started_at", 0))))
    return (f"{holder.get('purpose', 'another process')} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"started {started})")
