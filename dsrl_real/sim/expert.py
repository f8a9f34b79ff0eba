"""A scripted expert for the simulated tasks, with tunable noise, for demonstrations and tests.

It reads the simulator's true object positions and outputs Bridge-style delta actions
`[dx, dy, dz, droll, dpitch, dyaw, gripper]` (gripper 1 open, 0 closed).
"""

from __future__ import annotations

import numpy as np

from ..geometry import matrix_to_rpy, wrap_angle
from .tabletop import START_RPY, Tabletop

GAIN = 1.0  # fraction of the remaining distance covered per step (before the step limit)
MAX_STEP = np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25])
HOVER = 0.07  # height above a grasp point to approach from
REACHED = 0.015


class ScriptedExpert:
    """`noise` is the std of Gaussian noise on the motion dims, as a fraction of the step limit."""

    def __init__(self, sim: Tabletop, noise: float = 0.0, seed: int | None = None):
        if noise < 0:
            raise ValueError(f"Expert noise must be >= 0, got {noise}.")
        self.sim = sim
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def act(self) -> np.ndarray:
        goal, close = self._waypoint()
        ee = self.sim.ee_position
        rpy = matrix_to_rpy(self.sim.ee_matrix()[:3, :3])
        motion = np.concatenate([GAIN * (goal - ee), wrap_angle(np.asarray(START_RPY) - rpy)])
        motion = np.clip(motion, -MAX_STEP, MAX_STEP)
        if self.noise > 0:
            motion = motion + self.rng.normal(0.0, self.noise, 6) * MAX_STEP
        return np.concatenate([np.clip(motion, -MAX_STEP, MAX_STEP), [0.0 if close else 1.0]]).astype(np.float32)

    def _waypoint(self) -> tuple[np.ndarray, bool]:
        """Where to go next and whether the gripper should be closed, from the current state."""
        ee = self.sim.ee_position
        if self.sim.monkey is not None:
            m = self.sim.monkey
            if m.grasped:
                above_towel = np.array([*m.towel_center, 0.10])
                if np.linalg.norm(ee[:2] - m.towel_center) > REACHED:
                    return np.array([*ee[:2], max(ee[2], 0.10)]) if ee[2] < 0.09 else above_towel, True
                return above_towel, False  # over the towel: let go
            return self._grasp(m.position)
        d = self.sim.drawer
        if d.grasped:
            return np.array([d.front_x - d.handle_offset - 0.09, d.center_y, d.handle_z]), True
        return self._grasp(d.handle)

    def _grasp(self, point: np.ndarray) -> tuple[np.ndarray, bool]:
        ee = self.sim.ee_position
        if np.linalg.norm(ee[:2] - point[:2]) > REACHED:
            return point + np.array([0.0, 0.0, HOVER]), False  # get above it first
        if abs(ee[2] - point[2]) > REACHED:
            return point, False
        return point, True
