"""The safety filter: every command to a robot passes through here.

A Bridge delta action `[dx, dy, dz, droll, dpitch, dyaw, gripper]` becomes an absolute target that
(1) moves at most the per-step limit from the measured pose and (2) stays inside the workspace
box. If the arm is somehow outside the box, the target steps back towards it, still within the
per-step limit. Non-finite actions become "hold still". Every change made is reported.

Limits that are not finite numbers are refused when they are made (a NaN bound would let every
target through the clip), and a measured pose that is not finite stops the step before anything
is sent, so every target that leaves the filter is finite and within the limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..geometry import wrap_angle
from ..robots.base import PoseTarget, RobotState

ACTION_DIM = 7


class EmergencyStop(RuntimeError):
    """The human pressed the emergency stop: the robot holds still and the run ends."""


class UnsafeStateError(UserError, RuntimeError):
    """The robot reported a pose no safe target can be computed from; nothing was sent to it."""


@dataclass(frozen=True)
class SafetyLimits:
    workspace_low: tuple[float, float, float]
    workspace_high: tuple[float, float, float]
    max_step_xyz: float = 0.05
    max_step_rpy: float = 0.25
    rpy_low: tuple[float, float, float] = (-np.pi, -np.pi, -np.pi)
    rpy_high: tuple[float, float, float] = (np.pi, np.pi, np.pi)

    def __post_init__(self) -> None:
        for name in ("workspace_low", "workspace_high", "rpy_low", "rpy_high"):
            bound = np.asarray(getattr(self, name), dtype=float)
            if bound.shape != (3,) or not np.all(np.isfinite(bound)):
                raise ValueError(f"Safety limit {name} = {list(getattr(self, name))} must be 3 finite numbers.")
        # `not low < high` (rather than `low >= high`) so that a NaN can never pass.
        if not np.all(np.asarray(self.workspace_low, dtype=float) < np.asarray(self.workspace_high, dtype=float)):
            raise ValueError(
                f"Workspace box is empty: low {list(self.workspace_low)} must be below high "
                f"{list(self.workspace_high)} on every axis."
            )
        if not np.all(np.asarray(self.rpy_low, dtype=float) < np.asarray(self.rpy_high, dtype=float)):
            raise ValueError(
                f"Orientation box is empty: rpy_low {list(self.rpy_low)} must be below rpy_high {list(self.rpy_high)} on every axis."
            )
        steps = np.array([self.max_step_xyz, self.max_step_rpy], dtype=float)
        if not np.all(np.isfinite(steps) & (steps > 0)):
            raise ValueError(
                f"Per-step limits max_step_xyz = {self.max_step_xyz} and max_step_rpy = {self.max_step_rpy} must be finite and positive."
            )


def action_bounds(limits: SafetyLimits) -> tuple[np.ndarray, np.ndarray]:
    """The env's action box: a delta within the per-step limits, and the gripper command in [0, 1]."""
    step = [limits.max_step_xyz] * 3 + [limits.max_step_rpy] * 3
    return np.array([-s for s in step] + [0.0], np.float32), np.array(step + [1.0], np.float32)


@dataclass(frozen=True)
class FilterReport:
    target: PoseTarget
    clipped_step: bool  # the action asked for more than the per-step limit
    clipped_workspace: bool  # the target was pulled back into the workspace box
    non_finite: bool  # the action had NaN/inf and was replaced by "hold still"

    @property
    def intervened(self) -> bool:
        return self.clipped_step or self.clipped_workspace or self.non_finite


class SafetyFilter:
    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self._low = np.asarray(limits.workspace_low, dtype=float)
        self._high = np.asarray(limits.workspace_high, dtype=float)
        self._rpy_low = np.asarray(limits.rpy_low, dtype=float)
        self._rpy_high = np.asarray(limits.rpy_high, dtype=float)

    def __call__(self, state: RobotState, action: np.ndarray) -> FilterReport:
        action = np.asarray(action, dtype=float).reshape(-1)
        if action.shape != (ACTION_DIM,):
            raise ValueError(
                f"Action has {action.size} values; a robot action is 7-D "
                "[dx, dy, dz, droll, dpitch, dyaw, gripper]."
            )
        measured = np.concatenate([np.asarray(state.xyz, float).reshape(-1), np.asarray(state.rpy, float).reshape(-1), [state.gripper]])
        if measured.shape != (ACTION_DIM,) or not np.all(np.isfinite(measured)):
            raise UnsafeStateError(
                f"The robot reported the pose xyz {np.asarray(state.xyz).tolist()}, rpy {np.asarray(state.rpy).tolist()}, "
                f"gripper {state.gripper}, which is not finite, so no command was sent; check the robot's driver and its state."
            )
        non_finite = not np.all(np.isfinite(action))
        if non_finite:
            action = np.concatenate([np.zeros(6), [state.gripper]])
        lim = self.limits
        xyz_step = np.clip(action[:3], -lim.max_step_xyz, lim.max_step_xyz)
        rpy_step = np.clip(action[3:6], -lim.max_step_rpy, lim.max_step_rpy)
        clipped_step = not (np.allclose(xyz_step, action[:3]) and np.allclose(rpy_step, action[3:6]))

        wanted_xyz = state.xyz + xyz_step
        xyz = np.clip(wanted_xyz, self._low, self._high)
        # Outside the box already: the projection may be far away; never step more than the limit.
        xyz = np.clip(xyz, state.xyz - lim.max_step_xyz, state.xyz + lim.max_step_xyz)
        wanted_rpy = wrap_angle(state.rpy + rpy_step)
        rpy = np.clip(wanted_rpy, self._rpy_low, self._rpy_high)
        rpy = state.rpy + np.clip(wrap_angle(rpy - state.rpy), -lim.max_step_rpy, lim.max_step_rpy)
        clipped_workspace = not (np.allclose(xyz, wanted_xyz) and np.allclose(wrap_angle(rpy - wanted_rpy), 0))
        gripper_open = bool(action[6] >= 0.5)
        return FilterReport(PoseTarget(xyz, wrap_angle(rpy), gripper_open), clipped_step, clipped_workspace, non_finite)
