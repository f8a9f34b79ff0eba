"""Standing in for an installed package: `swapped` registers a fake's modules under the real names
(`rclpy`, `launch.actions`, `pyrealsense2`, ...) for the duration of a block, then puts back whatever
was there before (or nothing)."""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def swapped(modules: Mapping[str, types.ModuleType]) -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
