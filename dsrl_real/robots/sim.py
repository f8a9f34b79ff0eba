"""The simulated robot, cameras and scene: the `Robot`, `Camera` and `Scene` protocols over one
shared `Tabletop`. These are what the README demo and most tests run on."""

from __future__ import annotations

import time

import numpy as np

from ..geometry import matrix_to_rpy, pose_to_matrix
from ..sim.render import VIEWS, Renderer
from ..sim.tabletop import GRIPPER_FULL_OPENING, START_RPY, START_XYZ, Tabletop
from ..tasks import TaskStatus
from .base import Frame, PoseTarget, RobotState


class SimRobot:
    def __init__(self, sim: Tabletop, start_xyz=START_XYZ, start_rpy=START_RPY):
        self.sim = sim
        self._start = pose_to_matrix(start_xyz, start_rpy)
        self.refusals = 0

    def reset(self) -> None:
        self.sim.set_gripper(False)
        if not self.sim.move_ee(self._start):
            raise RuntimeError("The configured start pose is out of the arm's reach; choose one inside the workspace.")

    def home(self) -> None:
        """The simulated scene resets itself, so there is nothing to get out of the way of."""

    def state(self) -> RobotState:
        mat = self.sim.ee_matrix()
        return RobotState(
            xyz=mat[:3, 3].copy(),
            rpy=matrix_to_rpy(mat[:3, :3]),
            gripper=float(self.sim.finger_gap / GRIPPER_FULL_OPENING),
            joints=self.sim.joints.copy(),
        )

    def command(self, target: PoseTarget, duration_s: float) -> bool:
        reached = self.sim.move_ee(pose_to_matrix(target.xyz, target.rpy))
        self.refusals += not reached
        self.sim.set_gripper(not target.gripper_open)
        return reached

    def stop(self) -> None:
        """The simulated arm never moves between commands."""

    def close(self) -> None:
        """Nothing to release."""


class SimCamera:
    def __init__(self, sim: Tabletop, name: str, view: str = "third_person", width: int = 128, height: int = 128):
        if view not in VIEWS:
            raise ValueError(f"Unknown simulated camera view '{view}'; choose one of {list(VIEWS)}.")
        self.sim, self.name, self.view = sim, name, view
        self.width, self.height = width, height
        self._renderer = Renderer(width, height)

    def read(self) -> Frame:
        return Frame(self._renderer.render(self.sim, self.view), time.monotonic())

    def close(self) -> None:
        """Nothing to release."""


class SimScene:
    def __init__(self, sim: Tabletop):
        self.sim = sim

    def reset(self, seed: int | None) -> None:
        self.sim.reset(seed)

    def status(self) -> TaskStatus:
        return self.sim.status()

    def object_state(self) -> np.ndarray:
        return self.sim.object_state()
