"""A software renderer for the kinematic tabletop: camera images without any GL library.

Each frame is a handful of primitives (polygons, shaded boxes, spheres, capsules) in world
coordinates, projected through a pinhole camera in one batch and drawn far to near with Pillow
(painter's algorithm). Things lying flat on the table (the table, the towel, shadows) are drawn
first in a fixed order; everything else is sorted by camera depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import kinematics

VIEWS = ("third_person", "wrist")
MIN_SIZE = 16
NEAR = 0.01  # m: geometry closer to the camera than this is clipped away

# Third-person camera: across the table, facing the robot, elevated, looking down (BridgeData-like).
# It stands off to one side so that the arm's links do not line up, and is aimed and zoomed so that
# the arm, the workspace (x 0.2..0.45, y -0.2..0.2) and the cabinet all fit.
THIRD_PERSON_EYE = (0.75, -0.2, 0.5)
THIRD_PERSON_TARGET = (0.28, 0.07, 0.05)
THIRD_PERSON_FOV_DEG = 66.0
# Wrist camera, in the gripper frame (x: pointing direction, z: up when the gripper is level).
WRIST_OFFSET = (-0.06, 0.0, 0.07)
WRIST_PITCH_DEG = 20.0  # tilted down so that the fingertips show at the bottom of the image
WRIST_FOV_DEG = 80.0

# Mostly from above, so that the faces each camera sees (+x for third_person, -x for wrist) differ.
LIGHT = np.array([-0.3, -0.5, 1.0]) / np.linalg.norm([-0.3, -0.5, 1.0])
AMBIENT, DIFFUSE = 0.55, 0.5

BACKGROUND = (92, 88, 84)
TABLE = (184, 180, 172)
TABLE_EXTENT = ((-0.3, 0.8), (-0.6, 0.6))  # (x range, y range)
TOWEL = (232, 202, 48)
MONKEY_BODY = (120, 76, 40)
MONKEY_HEAD = (132, 86, 46)
MONKEY_EAR = (104, 64, 34)
MONKEY_MUZZLE = (196, 156, 112)
ARM = (62, 62, 68)
GRIPPER = (44, 44, 50)
FINGER = (128, 128, 136)
CABINET = (196, 164, 118)
DRAWER = (236, 222, 194)
DRAWER_INSIDE = (98, 76, 54)
HANDLE = (34, 34, 38)

FINGER_LENGTH, FINGER_THICKNESS, FINGER_HEIGHT = 0.045, 0.008, 0.018
DRAWER_PANEL = 0.004  # the drawer front stands this far proud of the cabinet when closed
DRAWER_WALL = 0.008
DRAWER_BIAS = 0.01  # m: drawer parts win depth ties against the cabinet front they sit in

_BOX_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
# Corner indices of the faces +x, -x, +y, -y, +z, -z (corner index = 4*(x>0) + 2*(y>0) + (z>0)).
_BOX_FACES = ((4, 5, 7, 6), (0, 2, 3, 1), (2, 6, 7, 3), (0, 1, 5, 4), (1, 3, 7, 5), (0, 4, 6, 2))
_TOP_FACE = 4
_CIRCLE = np.array([[math.cos(a), math.sin(a), 0.0] for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)])
_UP = np.array([0.0, 0.0, 1.0])


def _scaled(colour: tuple, k: float) -> tuple:
    return tuple(min(255, int(c * k)) for c in colour)


def _rectangle(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])


@dataclass(frozen=True)
class Camera:
    position: np.ndarray
    world_to_camera: np.ndarray  # rows: image right, image down, viewing direction
    focal: float  # pixels
    center: tuple[float, float]  # principal point (column, row)


def look_along(forward: np.ndarray, up: np.ndarray) -> np.ndarray:
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward])


def focal_length(image_height: int, fov_deg: float) -> float:
    return 0.5 * image_height / math.tan(math.radians(fov_deg) / 2)


def wrist_camera_pose(ee: np.ndarray, ee_rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position and world-to-camera rotation of the camera riding on the gripper."""
    pitch = math.radians(WRIST_PITCH_DEG)
    x_axis, z_axis = ee_rotation[:, 0], ee_rotation[:, 2]
    forward = math.cos(pitch) * x_axis - math.sin(pitch) * z_axis
    return ee + ee_rotation @ np.array(WRIST_OFFSET), look_along(forward, z_axis)


def _clip_near(points: list[list[float]]) -> list[list[float]]:
    """Sutherland-Hodgman clip of a camera-space polygon against the near plane."""
    out = []
    prev = points[-1]
    for cur in points:
        if (cur[2] >= NEAR) != (prev[2] >= NEAR):
            t = (NEAR - prev[2]) / (cur[2] - prev[2])
            out.append([p + t * (c - p) for p, c in zip(prev, cur)])
        if cur[2] >= NEAR:
            out.append(cur)
        prev = cur
    return out


class _Scene:
    """One frame's primitives: collected in world coordinates, projected together, then drawn."""

    def __init__(self, camera: Camera):
        self.camera = camera
        self._chunks: list[np.ndarray] = []
        self._count = 0
        self._flat: list[tuple] = []  # (point indices, fill): drawn first, in insertion order
        self._solid: list[tuple] = []  # (point indices for depth, depth bias, draw method, args): sorted

    def _add(self, points: np.ndarray) -> list[int]:
        start = self._count
        self._chunks.append(points)
        self._count += len(points)
        return list(range(start, self._count))

    # ---- primitives -------------------------------------------------------------------------
    def flat_polygon(self, points: np.ndarray, fill: tuple) -> None:
        self._flat.append((self._add(points), fill))

    def shadow(self, center_xy, radius: float, alpha: int) -> None:
        """Soft shadow on the table: a wider faint disc under a smaller, darker one."""
        if alpha <= 0:
            return
        center = np.array([center_xy[0], center_xy[1], 5e-4])
        for scale in (1.5, 1.0):
            self.flat_polygon(center + _CIRCLE * (radius * scale), (0, 0, 0, alpha // 2))

    def box(self, center, half, rotation, fill, depth_bias=0.0, top_overlay=None) -> None:
        """A box with back faces culled and Lambert-shaded faces.

        `top_overlay` (points, fill) is a polygon painted on the top face, right after it.
        """
        center, half = np.asarray(center, float), np.asarray(half, float)
        corners = self._add(center + (_BOX_CORNERS * half) @ rotation.T)
        eye_in_box = (rotation.T @ (self.camera.position - center)).tolist()
        light_in_box = (rotation.T @ LIGHT).tolist()
        for face_index, face in enumerate(_BOX_FACES):
            axis, sign = face_index // 2, (1.0, -1.0)[face_index % 2]
            if sign * eye_in_box[axis] <= half[axis]:
                continue  # faces away from the camera
            indices = [corners[i] for i in face]
            layers = [(indices, _scaled(fill, AMBIENT + DIFFUSE * max(0.0, sign * light_in_box[axis])))]
            if face_index == _TOP_FACE and top_overlay is not None:
                layers.append((self._add(top_overlay[0]), top_overlay[1]))
            self._solid.append((indices, depth_bias, self._draw_polygons, (layers,)))

    def sphere(self, center, radius: float, fill) -> None:
        index = self._add(np.asarray(center, float)[None])
        self._solid.append((index, 0.0, self._draw_sphere, (index[0], radius, fill)))

    def capsule(self, a, b, radius: float, fill) -> None:
        ends = self._add(np.array([a, b], dtype=float))
        self._solid.append((ends, 0.0, self._draw_capsule, (*ends, radius, fill)))

    # ---- drawing ----------------------------------------------------------------------------
    def draw(self, canvas: ImageDraw.ImageDraw, blending_canvas: ImageDraw.ImageDraw) -> None:
        cam = self.camera
        self._in_camera = (np.concatenate(self._chunks) - cam.position) @ cam.world_to_camera.T
        depth = self._in_camera[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):  # points behind the camera are never used
            pixels = cam.focal * self._in_camera[:, :2] / depth[:, None] + cam.center
        self._pixels, self._depth = pixels.tolist(), depth.tolist()

        for indices, fill in self._flat:
            outline = self._outline(indices)
            if len(outline) >= 3:
                (blending_canvas if len(fill) == 4 else canvas).polygon(outline, fill=fill)

        keyed = []
        for order, (indices, bias, draw_item, args) in enumerate(self._solid):
            mean_depth = sum(self._depth[i] for i in indices) / len(indices)
            keyed.append((bias - mean_depth, order, draw_item, args))
        for _, _, draw_item, args in sorted(keyed, key=lambda item: item[:2]):
            draw_item(canvas, *args)

    def _outline(self, indices: list[int]) -> list:
        if min(self._depth[i] for i in indices) >= NEAR:
            return [self._pixels[i] for i in indices]
        return [self._to_pixel(p) for p in _clip_near(self._in_camera[indices].tolist())]

    def _to_pixel(self, p) -> list[float]:
        f, (cx, cy) = self.camera.focal, self.camera.center
        return [cx + f * p[0] / p[2], cy + f * p[1] / p[2]]

    def _draw_polygons(self, canvas, layers) -> None:
        for indices, fill in layers:
            outline = self._outline(indices)
            if len(outline) >= 3:
                canvas.polygon(outline, fill=fill)

    def _draw_sphere(self, canvas, index: int, radius: float, fill) -> None:
        z = self._depth[index]
        if z - radius < NEAR:
            return
        (x, y), r = self._pixels[index], self.camera.focal * radius / z
        # Dark rim, body, then a highlight up and to the left: reads as a shaded ball.
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=_scaled(fill, 0.7))
        x, y, r = x - 0.08 * r, y - 0.1 * r, 0.86 * r
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        x, y, r = x - 0.25 * r, y - 0.3 * r, 0.4 * r
        canvas.ellipse((x - r, y - r, x + r, y + r), fill=_scaled(fill, 1.25))

    def _draw_capsule(self, canvas, start: int, end: int, radius: float, fill) -> None:
        a, b = self._in_camera[start], self._in_camera[end]
        if a[2] < NEAR and b[2] < NEAR:
            return
        if b[2] < NEAR or a[2] < NEAR:  # cut the segment at the near plane
            a, b = (a, b) if b[2] < NEAR else (b, a)
            b = a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a)
        width = max(1, round(4 * self.camera.focal * radius / (a[2] + b[2])))
        ends = self._to_pixel(a) + self._to_pixel(b)
        r = width / 2
        canvas.line(ends, fill=fill, width=width)
        for x, y in (ends[:2], ends[2:]):
            canvas.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        if width >= 4:  # a lighter stripe makes the link read as a tube
            canvas.line(ends, fill=_scaled(fill, 1.45), width=width // 4)


def _add_table(scene: _Scene) -> None:
    (x0, x1), (y0, y1) = TABLE_EXTENT
    scene.flat_polygon(_rectangle(x0, x1, y0, y1, 0.0), TABLE)


def _add_monkey(scene: _Scene, monkey) -> None:
    (x, y), h = monkey.towel_center, monkey.towel_half_size
    scene.flat_polygon(_rectangle(x - h, x + h, y - h, y + h, 1e-3), TOWEL)
    r, body = monkey.radius, monkey.position
    lift = max(0.0, body[2] - r)
    scene.shadow(body[:2], r * (1.1 + 2 * lift), int(150 * max(0.0, 1 - 4 * lift)))
    head = body + (0.0, 0.0, 1.5 * r)
    scene.sphere(body, r, MONKEY_BODY)
    scene.sphere(head, 0.7 * r, MONKEY_HEAD)
    for side in (-1, 1):  # a little behind the face, so the head overlaps them
        scene.sphere(head + (-0.15 * r, side * 0.68 * r, 0.2 * r), 0.3 * r, MONKEY_EAR)
    scene.sphere(head + (0.42 * r, 0.0, -0.12 * r), 0.36 * r, MONKEY_MUZZLE)  # face turned to +x


def _add_cabinet(scene: _Scene, drawer) -> None:
    d, upright = drawer, np.eye(3)
    half = (d.depth / 2, d.width / 2, d.height / 2)
    scene.box((d.front_x + half[0], d.center_y, half[2]), half, upright, CABINET)
    # Only the part of the drawer that is out of the cabinet is drawn; its inside shows on top.
    front, bottom, top = d.front_x - d.opening - DRAWER_PANEL, 0.012, d.height - 0.015
    half_width = d.width / 2 - 0.012
    inside = None
    if d.front_x - front > 2 * DRAWER_WALL:
        y0, y1 = d.center_y - half_width + DRAWER_WALL, d.center_y + half_width - DRAWER_WALL
        inside = (_rectangle(front + DRAWER_WALL, d.front_x, y0, y1, top), DRAWER_INSIDE)
    center = ((front + d.front_x) / 2, d.center_y, (bottom + top) / 2)
    half = ((d.front_x - front) / 2, half_width, (top - bottom) / 2)
    scene.box(center, half, upright, DRAWER, depth_bias=DRAWER_BIAS, top_overlay=inside)
    bar_front = d.handle[0] - 0.005
    center = ((bar_front + front) / 2, d.handle[1], d.handle[2])
    scene.box(center, ((front - bar_front) / 2, 0.03, 0.005), upright, HANDLE, depth_bias=DRAWER_BIAS)


def _add_arm(scene: _Scene, joints: np.ndarray, finger_gap: float) -> None:
    pts = kinematics.arm_points(joints)
    rot, ee = pts.ee_rotation, pts.ee
    scene.shadow(ee[:2], 0.015 + 0.08 * ee[2], int(140 * max(0.0, 1 - 2.5 * ee[2])))
    scene.box((0.0, 0.0, 0.025), (0.06, 0.06, 0.025), np.eye(3), GRIPPER)
    palm = ee - (FINGER_LENGTH + 0.012) * rot[:, 0]
    links = ((0.0, 0.0, 0.05), pts.shoulder, pts.elbow, pts.wrist, palm)
    for a, b, radius in zip(links[:-1], links[1:], (0.03, 0.022, 0.02, 0.018)):
        scene.capsule(a, b, radius, ARM)
    scene.box(palm, (0.012, 0.038, 0.02), rot, GRIPPER)
    finger_half = (FINGER_LENGTH / 2, FINGER_THICKNESS / 2, FINGER_HEIGHT / 2)
    for side in (-1, 1):
        offset = np.array([-FINGER_LENGTH / 2, side * (finger_gap + FINGER_THICKNESS) / 2, 0.0])
        scene.box(ee + rot @ offset, finger_half, rot, FINGER)


class Renderer:
    """Renders `Tabletop` scenes as RGB uint8 arrays of shape (height, width, 3)."""

    def __init__(self, width: int = 128, height: int = 128):
        if width < MIN_SIZE or height < MIN_SIZE:
            raise ValueError(f"Image size {width}x{height} is too small; both sides must be at least {MIN_SIZE}.")
        self.width, self.height = width, height
        self._image = Image.new("RGB", (width, height))
        self._canvas = ImageDraw.Draw(self._image)
        self._blending_canvas = ImageDraw.Draw(self._image, "RGBA")  # alpha-blends, slower: shadows only
        self._center = (width / 2, height / 2)
        eye = np.array(THIRD_PERSON_EYE)
        rotation = look_along(np.array(THIRD_PERSON_TARGET) - eye, _UP)
        self._third_person = Camera(eye, rotation, focal_length(height, THIRD_PERSON_FOV_DEG), self._center)
        self._wrist_focal = focal_length(height, WRIST_FOV_DEG)

    def camera(self, sim, view: str) -> Camera:
        if view == "third_person":
            return self._third_person
        if view == "wrist":
            pts = kinematics.arm_points(sim.joints)
            position, rotation = wrist_camera_pose(pts.ee, pts.ee_rotation)
            return Camera(position, rotation, self._wrist_focal, self._center)
        raise ValueError(f"Unknown view '{view}'; valid views are {', '.join(VIEWS)}.")

    def project(self, sim, view: str, points) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) as (column, row), and camera depths (N,), of world `points`."""
        cam = self.camera(sim, view)
        in_camera = (np.atleast_2d(np.asarray(points, float)) - cam.position) @ cam.world_to_camera.T
        return cam.focal * in_camera[:, :2] / in_camera[:, 2:] + cam.center, in_camera[:, 2]

    def render(self, sim, view: str) -> np.ndarray:
        scene = _Scene(self.camera(sim, view))
        _add_table(scene)
        if sim.monkey is not None:
            _add_monkey(scene, sim.monkey)
        if sim.drawer is not None:
            _add_cabinet(scene, sim.drawer)
        _add_arm(scene, sim.joints, sim.finger_gap)
        self._image.paste(BACKGROUND, (0, 0, self.width, self.height))
        scene.draw(self._canvas, self._blending_canvas)
        return np.array(self._image)
