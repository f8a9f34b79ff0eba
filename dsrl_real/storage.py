"""Files that must never be half-written: write to a temporary file beside the target, flush it to
disk, then rename it into place (atomic on POSIX), so a crash leaves the old file or the new one.
The temporary file is removed on any failure: in a write, the flush, the fsync, the close or the
rename (a full disk can surface at any of them). Files get the mode a plain `open()` gives under
the process umask (0644 under umask 022, so that lab-mates can read runs), not mkstemp's 0600.

msgpack payloads saved on their own (a policy, `dsrl-real pretrain`'s output) can carry their own
checksum (`write_checked_msgpack`), so that a flipped bit is refused instead of loaded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import msgpack
from flax import serialization

CHECKED_FORMAT = "dsrl_real.checked_msgpack.v1"  # {"format", "sha256", "content": the payload's msgpack bytes}


def create_beside(directory: str | Path, prefix: str = "", suffix: str = ".tmp") -> tuple[int, str]:
    """A new, empty file `prefix<random>suffix` in `directory`, opened for writing: (fd, path). Like
    tempfile.mkstemp (never an existing file), but with mode 0666 less the umask, as open() gives."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "No unused temporary file name", os.path.join(directory, f"{prefix}*{suffix}"))


@contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """`with atomic_file(p) as f: f.write(...)`: p appears complete or not at all, and no temporary
    file stays behind whatever fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_beside(path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def fsync_dir(path: str | Path) -> None:
    """Make a rename into (or out of) the folder durable; a no-op where the file system cannot."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def write_checked_msgpack(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically with a sha256 of its bytes; `read_msgpack` verifies it."""
    content = serialization.msgpack_serialize(payload)
    wrapper = {"format": CHECKED_FORMAT, "sha256": hashlib.sha256(content).hexdigest(), "content": content}
    write_atomic(path, msgpack.packb(wrapper, use_bin_type=True))


def read_msgpack(path: str | Path, expected_format: str, what: str, remedy: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """A msgpack file whose top-level `format` field must equal `expected_format`; every failure is
    one sentence naming `what` the file should be and the `remedy`. A file written by
    `write_checked_msgpack` is refused when its bytes no longer match its checksum."""
    path = Path(path)
    if not path.is_file():
        raise error(f"No {what} at '{path}'; {remedy}.")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:
        raise error(f"The {what} '{path}' is corrupt ({type(err).__name__}); restore it from a copy or {remedy}.") from err
    if isinstance(payload, dict) and payload.get("format") == CHECKED_FORMAT:
        content = payload.get("content")
        if not isinstance(content, bytes) or hashlib.sha256(content).hexdigest() != payload.get("sha256"):
            raise error(f"The {what} '{path}' is corrupt (its bytes do not match the checksum stored in it); "
                        f"restore it from a copy or {remedy}.")
        try:
            payload = serialization.msgpack_restore(content)
        except Exception as err:
            raise error(f"The {what} '{path}' is corrupt ({type(err).__name__}); restore it from a copy or {remedy}.") from err
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise error(f"'{path}' is not a {what} (format {found!r}, expected {expected_format!r}).")
    return payload
