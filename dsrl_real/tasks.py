"""What a task is to the runtime: its language instruction, its stages and its time limit.

The same description serves hardware and simulation; only the simulator can also say how far
along a task is (`TaskStatus`), a real robot learns that from a reward backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, ConfigError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    instruction: str
    stages: tuple[str, ...]
    max_steps: int = 70

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"Task '{self.name}' has no stages; give at least one stage instruction.")
        if self.max_steps < 1:
            raise ValueError(f"Task '{self.name}' has max_steps={self.max_steps}; it must be at least 1.")


@dataclass(frozen=True)
class TaskStatus:
    """Ground truth about an episode in progress: overall and per-stage."""

    progress: float  # overall, in [0, 1]
    success: bool
    stage: int  # index of the first stage not yet achieved (== len(stages) once all are)
    stage_success: tuple[bool, ...]
    stage_progress: float  # progress within the current stage, in [0, 1]


MONKEY = TaskSpec(
    name="monkey",
    instruction="pick up the brown monkey and put it on the yellow towel",
    stages=("pick up the brown monkey", "put the brown monkey on the yellow towel"),
)
DRAWER = TaskSpec(name="drawer", instruction="pull the drawer out", stages=("pull the drawer out",))
SIM_TASKS = {task.name: task for task in (MONKEY, DRAWER)}


def task_spec(cfg: Config) -> TaskSpec:
    """The task `cfg.task` describes: a simulated task by name, or any task by its instruction (and stages)."""
    t = cfg.task
    base = SIM_TASKS.get(t.name)
    if base is None and not t.instruction:
        raise ConfigError(
            f"Task '{t.name}' is not a simulated task ({', '.join(SIM_TASKS)}); set task.instruction for it."
        )
    instruction = t.instruction or base.instruction
    stages = tuple(t.stages) or (base.stages if base and not t.instruction else (instruction,))
    return TaskSpec(name=t.name, instruction=instruction, stages=stages, max_steps=t.max_steps)
