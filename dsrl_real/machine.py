"""The machine a run ran on, as a reader of its timings needs it: CPU model, the cores this process may use,
OS, Python, jax and the device jax computes on."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import jax


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name on Linux (/proc/cpuinfo's first 'model name'); elsewhere what `platform` knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit), not the host's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": usable_cores(), "os": platform.platform(), "python": platform.python_version(),
            "jax": jax.__version__, "jax_backend": jax.default_backend()}


def describe(info: dict[str, Any]) -> str:
    """One line: 'Intel(R) Xeon(R) Processor, 2 cores, Linux-6.1-x86_64-with-glibc2.36, Python 3.11.7, jax 0.7.2 on cpu'."""
    return (f"{info['cpu']}, {info['cores']} core{'s' if info['cores'] != 1 else ''}, {info['os']}, "
            f"Python {info['python']}, jax {info['jax']} on {info['jax_backend']}")
