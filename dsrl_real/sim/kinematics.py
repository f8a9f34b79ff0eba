"""Closed-form kinematics of the Interbotix WidowX 250 6DOF (wx250s).

Geometry from the Interbotix `mr_descriptions.wx250s` screw list: the waist turns about z, shoulder
and elbow about y, and the last three joints (forearm roll x, wrist angle y, wrist rotate x) meet
in one point, so inverse kinematics splits into a planar two-link arm plus an X-Y-X wrist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry import rot_x, rot_y, rot_z

JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
SHOULDER_HEIGHT = 0.11065
UPPER_ARM = np.array([0.04975, 0.25])  # shoulder -> elbow in the arm plane (forward, up) at zero
FOREARM = 0.25  # elbow -> wrist centre, horizontal at zero
WRIST_TO_EE = 0.458325 - 0.29975  # wrist centre -> ee_gripper_link along the gripper x axis
JOINT_LIMITS_DEG = np.array(
    [[-180.0, 180.0], [-108.0, 114.0], [-123.0, 92.0], [-180.0, 180.0], [-100.0, 123.0], [-180.0, 180.0]]
)
JOINT_LIMITS = np.radians(JOINT_LIMITS_DEG)
HOME_JOINTS = np.zeros(6)
SLEEP_JOINTS = np.array([0.0, -1.88, 1.5, 0.0, 0.8, 0.0])

_L1 = float(np.hypot(*UPPER_ARM))
_ALPHA = float(math.atan2(UPPER_ARM[1], UPPER_ARM[0]))  # upper arm elevation at shoulder = 0


@dataclass(frozen=True)
class ArmPoints:
    """Positions of the arm's joints in the base frame, for rendering."""

    shoulder: np.ndarray
    elbow: np.ndarray
    wrist: np.ndarray
    ee: np.ndarray
    ee_rotation: np.ndarray


def _arm_rotation(q: np.ndarray) -> np.ndarray:
    return rot_z(q[0]) @ rot_y(q[1] + q[2])


def forward(q: np.ndarray) -> np.ndarray:
    """4x4 pose of ee_gripper_link for joint angles q (radians)."""
    pts = arm_points(q)
    out = np.eye(4)
    out[:3, :3] = pts.ee_rotation
    out[:3, 3] = pts.ee
    return out


def arm_points(q: np.ndarray) -> ArmPoints:
    waist = rot_z(q[0])
    a1 = _ALPHA - q[1]
    a2 = -(q[1] + q[2])
    shoulder = np.array([0.0, 0.0, SHOULDER_HEIGHT])
    elbow = shoulder + waist @ np.array([_L1 * math.cos(a1), 0.0, _L1 * math.sin(a1)])
    wrist = elbow + waist @ np.array([FOREARM * math.cos(a2), 0.0, FOREARM * math.sin(a2)])
    rot = _arm_rotation(q) @ rot_x(q[3]) @ rot_y(q[4]) @ rot_x(q[5])
    return ArmPoints(shoulder, elbow, wrist, wrist + WRIST_TO_EE * rot[:, 0], rot)


def within_limits(q: np.ndarray) -> bool:
    return bool(np.all(q >= JOINT_LIMITS[:, 0] - 1e-9) and np.all(q <= JOINT_LIMITS[:, 1] + 1e-9))


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def inverse(target: np.ndarray, guess: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """Joint angles reaching the 4x4 `target`, closest to `guess` among the in-limit solutions.

    Returns (angles, True) or (guess, False) when no in-limit solution exists.
    """
    guess = HOME_JOINTS if guess is None else np.asarray(guess, dtype=float)
    rot, pos = target[:3, :3], target[:3, 3]
    wrist = pos - WRIST_TO_EE * rot[:, 0]
    waist = math.atan2(wrist[1], wrist[0])
    r = math.hypot(wrist[0], wrist[1])
    h = wrist[2] - SHOULDER_HEIGHT
    cos_bend = (r * r + h * h - _L1 * _L1 - FOREARM * FOREARM) / (2 * _L1 * FOREARM)
    if abs(cos_bend) > 1.0:
        return guess, False
    bend = math.acos(cos_bend)  # forearm bends down relative to the upper arm (elbow up)
    elbow = bend - _ALPHA
    a1 = math.atan2(h, r) + math.atan2(FOREARM * math.sin(bend), _L1 + FOREARM * math.cos(bend))
    shoulder = _ALPHA - a1
    base = np.array([waist, shoulder, elbow])
    wrist_rot = _arm_rotation(np.array([waist, shoulder, elbow])).T @ rot
    b = math.acos(max(-1.0, min(1.0, wrist_rot[0, 0])))
    candidates = []
    if b < 1e-9:  # wrist straight: roll and rotate are one axis, keep the guess's split
        total = math.atan2(wrist_rot[2, 1], wrist_rot[1, 1])
        candidates.append(np.concatenate([base, [guess[3], 0.0, _wrap(total - guess[3])]]))
    else:
        a = math.atan2(wrist_rot[1, 0], -wrist_rot[2, 0])
        c = math.atan2(wrist_rot[0, 1], wrist_rot[0, 2])
        candidates.append(np.concatenate([base, [a, b, c]]))
        candidates.append(np.concatenate([base, [_wrap(a + math.pi), -b, _wrap(c + math.pi)]]))
    valid = [q for q in candidates if within_limits(q)]
    if not valid:
        return guess, False
    best = min(valid, key=lambda q: float(np.sum(np.abs(np.array([_wrap(x) for x in q - guess])))))
    return best, True
