"""The scene on real hardware: a person resets it between episodes; there is no ground truth."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ..tasks import TaskSpec


def terminal_prompt(message: str) -> str:
    """Ask the person at the robot: through stdin when it is a terminal, else through the controlling
    terminal (/dev/tty), as under `ros2 launch`, which gives its processes no stdin."""
    if sys.stdin is not None and sys.stdin.isatty():
        return input(message)
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as err:
        raise RuntimeError("There is no keyboard to ask for the scene reset: run the node in a terminal "
                           "(`ros2 run dsrl_real dsrl_real_node`, or launch with node_prefix:='xterm -hold -e').") from err
    try:
        os.write(fd, message.encode())
        line = b""
        while not line.endswith(b"\n"):
            char = os.read(fd, 1)
            if not char:
                raise RuntimeError("The terminal closed while waiting for the scene reset; start the run again from a terminal.")
            line += char
    finally:
        os.close(fd)
    line = line.decode(errors="replace")
    return line.rstrip("\n")


class ManualScene:
    def __init__(self, task: TaskSpec, prompt: Callable[[str], str] = terminal_prompt):
        self.task = task
        self._prompt = prompt

    def reset(self, seed: int | None) -> None:
        self._prompt(f"Reset the scene for: '{self.task.instruction}'. Press Enter when the robot may start. ")

    def status(self) -> None:
        return None

    def object_state(self) -> None:
        return None
