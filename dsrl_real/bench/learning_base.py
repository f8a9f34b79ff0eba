"""The base policy the benches over seeds (`bench learning`, `bench reward-trust`) steer: pretrained once
per output folder (one task, one observation mode) and shared by every seed and variant. The first process to get there pretrains it under a file
lock; any other (a parallel invocation on the same --out) waits for the lock, then loads what the first
saved. base.json, written last, says it is complete: a pretraining cut short is redone from scratch."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import load_config
from ..config.observations import observation_label
from ..errors import UserError
from ..machine import machine_info
from ..policies.pipeline import base_success, pretrain_from_demos
from ..storage import write_atomic

SETTINGS_FILE = "bench.json"  # what the folder's runs were asked for; a later invocation must ask for the same
BASE_FILE = "base.json"
LOCK_FILE = ".bench_learning.lock"
PER_VARIANT = "_overrides"  # a settings key ending so holds a dict of each variant's overrides


def policy_file(out: Path) -> Path:
    return out / "base" / "policy" / "policy.msgpack"


def demos_dir(out: Path) -> Path:
    """The recorded demonstrations the base policy was pretrained on (pipeline.pretrain_from_demos)."""
    return out / "base" / "demos"


@contextmanager
def folder_lock(out: Path, bench: str = "learning") -> Iterator[None]:
    """An exclusive flock on out/.bench_learning.lock, waiting for another holder (said on stderr)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"bench {bench}: waiting for another process preparing '{out}' (the base policy)", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise UserError(f"'{path}' is not readable JSON ({err}); remove it and run the bench again.") from err


def write_json(path: Path, value: dict) -> None:
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def settings_conflicts(held: dict, asked: dict, joiner: str = ", not") -> list[str]:
    """Where two benches' settings disagree, in words. A per-variant setting (a dict under a key ending in
    PER_VARIANT, e.g. each condition's overrides) must agree on the variants both name: a folder may hold
    variants another lacks."""
    differ = []
    for k in [*held, *(k for k in asked if k not in held)]:
        a, b = held.get(k), asked.get(k)
        if k.endswith(PER_VARIANT) and isinstance(a, dict) and isinstance(b, dict):
            differ += [f"{k}[{v}] {a[v]!r}{joiner} {b[v]!r}" for v in a if v in b and a[v] != b[v]]
        elif a != b:
            differ.append(f"{k} {a!r}{joiner} {b!r}")
    return differ


def joined_settings(held: dict, asked: dict) -> dict:
    """`held` with the per-variant settings of `asked` added (both agree: settings_conflicts is empty)."""
    return {**held, **{k: {**v, **asked[k]} for k, v in held.items() if k.endswith(PER_VARIANT) and isinstance(v, dict)
                       and isinstance(asked.get(k), dict)}}


def check_settings(out: Path, settings: dict) -> None:
    """Keep `settings` in out/bench.json, or refuse a folder whose runs were asked for with others (or by
    another bench: a bench other than learning names itself in its settings' "bench")."""
    held = read_json(out / SETTINGS_FILE)
    if held is None:
        write_json(out / SETTINGS_FILE, settings)
        return
    bench = held.get("bench", "learning")
    if bench != settings.get("bench", "learning"):
        raise UserError(f"'{out}' holds a bench {bench} run; choose another --out or remove that folder.")
    differ = settings_conflicts(held, settings)
    if differ:
        raise UserError(f"'{out}' holds a bench {bench} run with other settings ({'; '.join(differ)}); "
                        "choose another --out or remove that folder.")
    joined = joined_settings(held, settings)
    if joined != held:  # variants the folder did not know yet
        write_json(out / SETTINGS_FILE, joined)


def ensure_base(out: Path, overrides: list[str], settings: dict, eval_episodes: int, bench: str = "learning") -> dict:
    """out/base.json (the base policy's success over `eval_episodes`, the observation label, the
    policy file and its sha256), pretraining the policy first unless a complete one is there."""
    with folder_lock(out, bench):
        check_settings(out, settings)
        base = read_json(out / BASE_FILE)
        if base is not None:
            return base
        start = time.perf_counter()
        shutil.rmtree(out / "base", ignore_errors=True)  # what a pretraining cut short left
        cfg = load_config(overrides=overrides)
        print(f"bench {bench}: collecting demos and pretraining the base policy into '{out / 'base'}'", file=sys.stderr)
        policy, _, _ = pretrain_from_demos(cfg, out / "base")
        summary = base_success(cfg, policy, eval_episodes)
        base = {"success_rate": summary["success_rate"], "ci95": summary["ci95"], "episodes": summary["episodes"],
                "observations": observation_label(cfg), "policy": str(policy_file(out)),
                "sha256": hashlib.sha256(policy_file(out).read_bytes()).hexdigest(),
                "wall_s": round(time.perf_counter() - start, 1), "machine": machine_info()}
        write_json(out / BASE_FILE, base)
        return base
