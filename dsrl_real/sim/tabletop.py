"""A kinematic tabletop for a WidowX 250s: the arm, its gripper and the two tasks of the papers.

The arm goes exactly where it is commanded when inverse kinematics has an in-limit solution
(otherwise it stays put), objects follow simple rules: a closed gripper around an object holds
it, an opened gripper drops it onto the table. Everything is a deterministic function of the
seed and the commands, which is what tests and demos need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import pose_to_matrix
from ..tasks import SIM_TASKS, TaskSpec, TaskStatus
from . import kinematics

# The arm's start pose for every episode (Bridge-style: above the table, gripper tilted down).
START_XYZ = (0.25, 0.0, 0.16)
START_RPY = (0.0, 1.2, 0.0)
GRIPPER_FULL_OPENING = 0.036  # finger gap (m) when fully open
GRASP_TOLERANCE_XY = 0.025
GRASP_TOLERANCE_Z = 0.03


@dataclass
class Monkey:
    position: np.ndarray  # centre of the body sphere
    towel_center: np.ndarray  # (x, y)
    radius: float = 0.022
    towel_half_size: float = 0.06
    grasped: bool = False

    def on_towel(self) -> bool:
        inside = np.all(np.abs(self.position[:2] - self.towel_center) <= self.towel_half_size)
        return bool(inside and not self.grasped and self.position[2] <= self.radius + 1e-6)


@dataclass
class Drawer:
    front_x: float  # x of the cabinet's front face (the face towards the robot)
    center_y: float
    opening: float = 0.0
    grasped: bool = False
    max_opening: float = 0.10
    success_opening: float = 0.07
    handle_z: float = 0.05
    handle_offset: float = 0.015  # handle sticks out this far from the drawer front
    width: float = 0.16
    depth: float = 0.14
    height: float = 0.09

    @property
    def handle(self) -> np.ndarray:
        return np.array([self.front_x - self.opening - self.handle_offset, self.center_y, self.handle_z])


class Tabletop:
    """The simulated scene. `task` is one of `SIM_TASKS`."""

    def __init__(self, task: str = "monkey", seed: int | None = None):
        if task not in SIM_TASKS:
            raise ValueError(f"Unknown simulated task '{task}'; choose one of {sorted(SIM_TASKS)}.")
        self.task: TaskSpec = SIM_TASKS[task]
        self.joints = kinematics.HOME_JOINTS.copy()
        self.gripper_closed = False
        self.finger_gap = GRIPPER_FULL_OPENING
        self.monkey: Monkey | None = None
        self.drawer: Drawer | None = None
        self._stage_latched: list[bool] = []
        self.reset(seed)

    # ---- scene ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Arm to the start pose with the gripper open, objects placed at random from `seed`."""
        rng = np.random.default_rng(seed)
        start, ok = kinematics.inverse(pose_to_matrix(START_XYZ, START_RPY))
        assert ok, "the start pose must be reachable"
        self.joints = start
        self.gripper_closed = False
        self.finger_gap = GRIPPER_FULL_OPENING
        self.monkey = self.drawer = None
        if self.task.name == "monkey":
            self.monkey = self._place_monkey(rng)
        else:
            self.drawer = Drawer(front_x=float(rng.uniform(0.37, 0.42)), center_y=float(rng.uniform(-0.1, 0.1)))
        self._stage_latched = [False] * len(self.task.stages)

    @staticmethod
    def _place_monkey(rng: np.random.Generator) -> Monkey:
        while True:
            monkey_xy = rng.uniform([0.22, -0.14], [0.36, 0.14])
            towel_xy = rng.uniform([0.22, -0.14], [0.36, 0.14])
            if np.linalg.norm(monkey_xy - towel_xy) >= 0.13:
                monkey = Monkey(position=np.array([*monkey_xy, 0.0]), towel_center=towel_xy)
                monkey.position[2] = monkey.radius
                return monkey

    # ---- arm --------------------------------------------------------------------------------
    def ee_matrix(self) -> np.ndarray:
        return kinematics.forward(self.joints)

    @property
    def ee_position(self) -> np.ndarray:
        return kinematics.arm_points(self.joints).ee

    def move_ee(self, target: np.ndarray) -> bool:
        """Move the gripper to the 4x4 `target`; False (and no motion) if it is unreachable."""
        joints, ok = kinematics.inverse(target, self.joints)
        if ok:
            self.set_joints(joints)
        return ok

    def set_joints(self, joints: np.ndarray) -> bool:
        joints = np.asarray(joints, dtype=float)
        if not kinematics.within_limits(joints):
            return False
        self.joints = joints.copy()
        self._update_objects()
        return True

    def set_gripper(self, closed: bool) -> None:
        if closed and not self.gripper_closed:
            self._try_grasp()
        if not closed:
            self._release()
        self.gripper_closed = closed
        self._update_objects()

    # ---- object rules -----------------------------------------------------------------------
    def _near(self, point: np.ndarray) -> bool:
        delta = self.ee_position - point
        return bool(np.hypot(delta[0], delta[1]) <= GRASP_TOLERANCE_XY and abs(delta[2]) <= GRASP_TOLERANCE_Z)

    def _try_grasp(self) -> None:
        if self.monkey is not None and self._near(self.monkey.position):
            self.monkey.grasped = True
        if self.drawer is not None and self._near(self.drawer.handle):
            self.drawer.grasped = True

    def _release(self) -> None:
        if self.monkey is not None and self.monkey.grasped:
            self.monkey.grasped = False
            self.monkey.position[2] = self.monkey.radius  # falls onto the table (or towel)
        if self.drawer is not None:
            self.drawer.grasped = False

    def _update_objects(self) -> None:
        ee = self.ee_position
        if self.monkey is not None:
            if self.monkey.grasped:
                self.monkey.position = np.array([ee[0], ee[1], max(ee[2], self.monkey.radius)])
            self.finger_gap = 2 * self.monkey.radius * 0.8 if self.monkey.grasped else None
        if self.drawer is not None:
            d = self.drawer
            if d.grasped:
                # The handle follows the gripper along the drawer's axis; pulled sideways it slips.
                if abs(ee[1] - d.center_y) > 0.03 or abs(ee[2] - d.handle_z) > 0.04:
                    d.grasped = False
                else:
                    d.opening = float(np.clip(d.front_x - d.handle_offset - ee[0], 0.0, d.max_opening))
            self.finger_gap = 0.012 if d.grasped else None
        if self.finger_gap is None:
            self.finger_gap = 0.0 if self.gripper_closed else GRIPPER_FULL_OPENING
        self._latch_stages()

    # ---- ground truth -----------------------------------------------------------------------
    def _stage_done_now(self) -> list[bool]:
        if self.monkey is not None:
            m = self.monkey
            lifted = m.grasped and m.position[2] - m.radius >= 0.03
            return [lifted or m.on_towel(), m.on_towel()]
        d = self.drawer
        return [d.opening >= d.success_opening]

    def _latch_stages(self) -> None:
        now = self._stage_done_now()
        # An earlier stage stays achieved once reached; the last stage is judged on the current state.
        for i in range(len(now) - 1):
            self._stage_latched[i] = self._stage_latched[i] or now[i]
        self._stage_latched[-1] = now[-1]

    def status(self) -> TaskStatus:
        done = tuple(self._stage_latched)
        stage = next((i for i, s in enumerate(done) if not s), len(done))
        ee = self.ee_position
        if self.monkey is not None:
            m = self.monkey
            reach = 1.0 - min(float(np.linalg.norm(ee - m.position)) / 0.25, 1.0)
            carry = 1.0 - min(float(np.linalg.norm(m.position[:2] - m.towel_center)) / 0.25, 1.0)
            lift = min(max(m.position[2] - m.radius, 0.0) / 0.03, 1.0)
            if done[-1]:
                progress, stage_progress = 1.0, 1.0
            elif m.grasped:
                progress = 0.5 + 0.1 * lift + 0.35 * carry
                stage_progress = carry if stage == 1 else 0.5 + 0.5 * lift
            elif done[0]:  # picked up, then let go: as far along as the towel is near (dropped beside it: a near miss)
                progress = 0.5 + 0.35 * carry
                stage_progress = carry
            else:
                progress = 0.4 * reach
                stage_progress = 0.5 * reach if stage == 0 else 0.0
        else:
            d = self.drawer
            reach = 1.0 - min(float(np.linalg.norm(ee - d.handle)) / 0.25, 1.0)
            opened = min(d.opening / d.success_opening, 1.0)
            progress = 1.0 if done[-1] else 0.3 * reach + 0.1 * d.grasped + 0.6 * opened * d.grasped
            progress = max(progress, 0.6 * opened)
            stage_progress = progress
        return TaskStatus(
            progress=float(np.clip(progress, 0.0, 1.0)),
            success=bool(done[-1]),
            stage=stage,
            stage_success=done,
            stage_progress=float(np.clip(stage_progress, 0.0, 1.0)),
        )

    def object_state(self) -> np.ndarray:
        """Privileged object state for state-based policies (float32)."""
        if self.monkey is not None:
            m = self.monkey
            vec = [*m.position, *m.towel_center, float(m.grasped)]
        else:
            d = self.drawer
            vec = [*d.handle, d.opening, float(d.grasped), 0.0]
        return np.asarray(vec, dtype=np.float32)

    OBJECT_STATE_DIM = 6
