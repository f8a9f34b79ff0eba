"""Typed configuration: dataclass defaults (the embedded default is the simulated WidowX monkey
task), overlaid by a YAML file from `configs/`, overlaid by dotted command-line overrides such as
`robot.control_hz=10`. Built on OmegaConf structured configs, which reject unknown keys and wrong
types; we turn those rejections into one sentence that names the valid keys.

Every field also declares what it accepts (`checked(default, "(0, 1]")`, a choice, a length), next to
its default; `check_config` holds the merged config to those declarations and to the few relations
between fields, and names the dotted key, the value and the allowed range of the first one broken."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration problem the user can fix; the message says how."""


# ---- what a field accepts --------------------------------------------------------------------------
_ALLOWED = "dsrl_real.allowed"  # the key of a field's `Allowed` in its dataclass metadata
_END = {"inf": math.inf, "-inf": -math.inf, "pi": math.pi, "-pi": -math.pi}


@dataclass(frozen=True)
class Allowed:
    """What one field accepts. `interval` bounds a number (or each number of a list), written as in
    the error message: "(0, 1]", "[1, 1024]"; ends may be inf, -inf, pi or -pi; numbers must also be
    finite. `choices` lists the accepted values (of each entry of a list); `nonempty` refuses "";
    `length` / `min_length` bound a list's size. A field with none of these takes any text."""

    interval: str = ""
    choices: tuple = ()
    nonempty: bool = False
    length: int | None = None
    min_length: int = 0

    def __post_init__(self) -> None:
        if self.interval:
            self.bounds  # noqa: B018 - a malformed interval fails at import, not at the first check

    @functools.cached_property
    def bounds(self) -> tuple[float, float, bool, bool]:
        """(low, high, low included, high included)."""
        match = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", self.interval)
        if not match:
            raise ValueError(f"Malformed interval {self.interval!r}; write it as e.g. '(0, 1]'.")
        opening, low, high, closing = match.groups()
        low_v, high_v = (_END[s] if s in _END else float(s) for s in (low, high))
        return low_v, high_v, opening == "[", closing == "]"

    def contains(self, x: float) -> bool:
        low, high, low_in, high_in = self.bounds
        return (low < x or (low_in and x == low)) and (x < high or (high_in and x == high))


def checked(default: Any, interval: str = "", *, choices: Sequence = (), nonempty: bool = False,
            length: int | None = None, min_length: int = 0) -> Any:
    """A dataclass field with its default and what it accepts (see `Allowed`)."""
    allowed = Allowed(interval, tuple(choices), nonempty, length, min_length)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={_ALLOWED: allowed})
    return field(default=default, metadata={_ALLOWED: allowed})


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _number_problem(value: Any, kind: type, allowed: Allowed) -> str | None:
    """Why `value` is not a number of type `kind` (int or float) inside `allowed.interval`; None if it is."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or (kind is int and not isinstance(value, numbers.Integral)):
        return f"is not {'an integer' if kind is int else 'a number'}; it must be in {allowed.interval}"
    if not math.isfinite(value):
        return f"is not a finite number; it must be in {allowed.interval}"
    if not allowed.contains(value):
        return f"is out of range; it must be in {allowed.interval}"
    return None


def _scalar_problem(value: Any, kind: type, allowed: Allowed) -> str | None:
    if allowed.interval:
        return _number_problem(value, kind, allowed)
    if allowed.choices:
        return None if value in allowed.choices else f"is not allowed; it must be one of: {', '.join(map(str, allowed.choices))}"
    if not isinstance(value, str):
        return "is not text"
    if allowed.nonempty and not value.strip():
        return "is empty; it must be a non-empty string"
    return None


def _field_problem(key: str, value: Any, hint: Any, allowed: Allowed) -> str | None:
    """The sentence for the first thing wrong with one field's value, naming its dotted key; None if nothing is."""
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            return f"{key} = {_show(value)} is not a list."
        if allowed.length is not None and len(value) != allowed.length:
            return f"{key} = {_show(value)} has {len(value)} entries; it must have exactly {allowed.length}."
        if len(value) < allowed.min_length:
            return f"{key} = {_show(value)} has {len(value)} entries; it must have at least {allowed.min_length}."
        (kind,) = typing.get_args(hint)
        for i, entry in enumerate(value):
            problem = _scalar_problem(entry, kind, allowed)
            if problem:
                return f"{key}[{i}] = {_show(entry)} {problem}."
        return None
    problem = _scalar_problem(value, hint, allowed)
    return f"{key} = {_show(value)} {problem}." if problem else None


# Choices shared with the modules that act on them (tests/test_config_values.py keeps the copies equal).
ROBOT_KINDS = ("sim", "widowx", "franka")
CAMERA_KINDS = ("sim", "realsense", "ros_topic")
SIM_VIEWS = ("third_person", "wrist")
REALSENSE_FPS = (6, 15, 30, 60)  # the color frame rates every D400 camera offers
REWARD_BACKENDS = ("sim_truth", "roboreward", "robometer", "human", "sim_human", "sim_truth_noisy")

# Intervals used by several fields.
XYZ = "[-2, 2]"  # metres from the robot's base: beyond any arm this project drives
ANGLE = "[-pi, pi]"  # radians
SEED = "[0, 1e9]"
EPISODES = "[0, 1e6]"
WIDTH = "[1, 16384]"  # network widths
LAYERS = "[1, 64]"
CHANNELS = "[1, 4096]"
IMAGE_SIDE = "[16, 1024]"  # pixels (the simulator renders 16 and up); two 1024 x 1024 cameras take 6 MB per observation
PROBABILITY = "[0, 1]"
LEARNING_RATE = "(0, 1]"
BATCH = "[1, 65536]"


@dataclass
class FrankaConfig:
    """robot.kind=franka: franka_ros2 topics and actions (defaults: fr3, no namespace; see robots/franka.py)."""

    command_topic: str = checked("/cartesian_impedance_controller/equilibrium_pose", nonempty=True)  # a controller taking PoseStamped targets
    pose_topic: str = checked("/franka_robot_state_broadcaster/current_pose", nonempty=True)
    joint_state_topic: str = checked("/franka_robot_state_broadcaster/measured_joint_states", nonempty=True)
    gripper_namespace: str = checked("/fr3_gripper", nonempty=True)  # franka_gripper: <ns>/homing, <ns>/move, <ns>/grasp, <ns>/joint_states
    base_frame: str = checked("fr3_link0", nonempty=True)
    # Orientations (start_rpy, home_rpy, safety.rpy_*) are relative to this one: R = R(rpy) @ R(reference_rpy).
    # The default points the gripper straight down, so rpy stays near 0 and never wraps at +-pi.
    reference_rpy: list[float] = checked([3.141592653589793, 0.0, 0.0], ANGLE, length=3)
    home_xyz: list[float] = checked([0.35, 0.0, 0.5], XYZ, length=3)  # out of the way for a scene reset
    home_rpy: list[float] = checked([0.0, 0.0, 0.0], ANGLE, length=3)
    move_speed: float = checked(0.1, "(0, 3]")  # m/s of the interpolated reset and home moves (FR3's Cartesian limit: 3 m/s)
    gripper_max_width: float = checked(0.08, "(0, 0.08]")  # Franka Hand
    gripper_speed: float = checked(0.1, "(0, 0.1]")  # m/s (the Franka Hand's most)
    grasp_force: float = checked(20.0, "(0, 140]")  # N (the Franka Hand's peak force: 140 N)
    grasp_epsilon: float = checked(0.08, "[0, 0.08]")  # m either side of a fully closed grasp: any object width counts as grasped
    gripper_timeout_s: float = checked(5.0, "(0, 600]")  # bounded wait for homing and opening
    state_timeout_s: float = checked(0.5, "(0, 60]")  # the arm's state may be at most this old


@dataclass
class RobotConfig:
    kind: str = checked("sim", choices=ROBOT_KINDS)
    robot_model: str = checked("wx250s", nonempty=True)
    control_hz: float = checked(5.0, "(0, 1000]")
    start_xyz: list[float] = checked([0.25, 0.0, 0.16], XYZ, length=3)  # inside the safety workspace
    start_rpy: list[float] = checked([0.0, 1.2, 0.0], ANGLE, length=3)  # inside safety.rpy_low .. rpy_high
    driver_timeout_s: float = checked(15.0, "(0, 3600]")  # how long to wait for the hardware driver before giving up
    # widowx: torque off on close, once the measured joints show the arm resting in its sleep pose (a
    # sleep move that fell short keeps the torque on, so the arm cannot drop)
    torque_off_on_close: bool = True
    franka: FrankaConfig = field(default_factory=FrankaConfig)


@dataclass
class CameraConfig:
    name: str = checked(MISSING, nonempty=True)  # unique among the cameras
    kind: str = checked("sim", choices=CAMERA_KINDS)
    view: str = checked("third_person", choices=SIM_VIEWS)  # sim only
    width: int = checked(128, IMAGE_SIDE)
    height: int = checked(128, IMAGE_SIDE)
    serial: str = checked("")  # realsense only: the device's serial number; empty: the first camera found
    topic: str = checked("")  # ros_topic only: a sensor_msgs/Image topic, e.g. /camera/camera/color/image_raw
    fps: int = checked(30, choices=REALSENSE_FPS)  # realsense only
    timeout_s: float = checked(1.0, "(0, 600]")


@dataclass
class SafetyConfig:
    # Each low below its high, on every axis.
    workspace_low: list[float] = checked([0.15, -0.20, 0.02], XYZ, length=3)
    workspace_high: list[float] = checked([0.42, 0.20, 0.25], XYZ, length=3)
    rpy_low: list[float] = checked([-0.5, 0.7, -0.8], ANGLE, length=3)
    rpy_high: list[float] = checked([0.5, 1.5, 0.8], ANGLE, length=3)
    max_step_xyz: float = checked(0.05, "(0, 0.2]")  # metres per control step
    max_step_rpy: float = checked(0.25, "(0, 1]")  # radians per control step


@dataclass
class TaskConfig:
    name: str = checked("monkey", nonempty=True)  # a simulated task (monkey | drawer) or any name for a real task
    instruction: str = checked("")  # empty: the simulated task's own
    stages: list[str] = checked([], nonempty=True)  # empty: the simulated task's own
    max_steps: int = checked(70, "[1, 1e5]")
    terminate_on_success: bool = True


@dataclass
class EnvConfig:
    real_time: bool = False  # keep the control rate with the rate keeper (always on hardware)
    object_state: bool = True  # simulation only: add privileged object state to observations
    max_frame_age_s: float = checked(0.5, "[0, 60]")  # hardware: a camera frame older than this stops the episode (0: no check)


@dataclass
class RunConfig:
    seed: int = checked(0, SEED)
    episodes: int = checked(10, EPISODES)
    eval_episodes: int = checked(50, EPISODES)
    out_dir: str = checked("runs", nonempty=True)
    expert_noise: float = checked(0.0, "[0, 10]")  # the scripted expert's noise, as a fraction of the step limit


@dataclass
class PolicyConfig:
    """The diffusion base policy's architecture and sampler."""

    checkpoint: str = checked("")  # a pretrained policy file; empty: none
    external: str = checked("")  # "package.module:factory" returning any BasePolicy (see README); used instead of checkpoint
    chunk_size: int = checked(4, "[1, 256]")
    vector_keys: list[str] = checked(["proprio", "object_state"], nonempty=True)
    image_keys: list[str] = checked([], nonempty=True)  # e.g. [third_person_image]; a goal image is one more key
    hidden_dim: int = checked(256, WIDTH)
    num_layers: int = checked(3, LAYERS)
    embed_dim: int = checked(128, WIDTH)
    conv_channels: list[int] = checked([16, 32, 32, 32], CHANNELS, min_length=1)
    train_diffusion_steps: int = checked(100, "[1, 1e4]")
    inference_steps: int = checked(8, "[1, 1e4]")  # at most train_diffusion_steps


@dataclass
class DemosConfig:
    """Scripted-expert demonstrations collected in simulation."""

    out_dir: str = checked("runs/demos", nonempty=True)
    episodes: int = checked(20, EPISODES)
    expert_noise: float = checked(0.3, "[0, 10]")
    successful_only: bool = False
    # npz: one .npz per episode | lerobot: recorded like any run (recording.RunRecorder: parquet + mp4
    # videos, kind "demo", failed attempts kept); pretraining reads either
    format: str = checked("npz", choices=("npz", "lerobot"))


@dataclass
class PretrainConfig:
    """Imitation pretraining of the base policy."""

    demos: str = checked("runs/demos", nonempty=True)
    out_dir: str = checked("runs/policy", nonempty=True)
    steps: int = checked(2000, "[0, 1e9]")
    batch_size: int = checked(256, BATCH)
    learning_rate: float = checked(3e-4, LEARNING_RATE)
    weight_decay: float = checked(1e-6, "[0, 1]")
    ema_decay: float = checked(0.995, "[0, 1)")
    val_fraction: float = checked(0.1, "[0, 1)")
    eval_every: int = checked(500, "[1, 1e9]")
    checkpoint_every: int = checked(1000, "[1, 1e9]")
    seed: int = checked(0, SEED)


@dataclass
class AgentConfig:
    """DSRL: SAC in the base policy's latent-noise space. Defaults: the small CPU preset for the simulator."""

    algorithm: str = checked("dsrl_sac", choices=("dsrl_sac", "dsrl_na"))
    hidden_dim: int = checked(256, WIDTH)
    num_layers: int = checked(3, LAYERS)
    activation: str = checked("tanh", choices=("tanh", "relu", "gelu"))
    num_critics: int = checked(5, "[1, 100]")
    critic_backup: str = checked("min", choices=("min", "mean"))  # over the critic ensemble, in the TD target
    # min backup over a random this-many of the critics per gradient step (REDQ: 2; SAC's Q, NA's Q^A); 0: all;
    # at most num_critics
    backup_subset: int = checked(0, "[0, 100]")
    actor_objective: str = checked("min", choices=("min", "mean"))  # over the critic ensemble, in the actor's loss (REDQ: mean)
    gamma: float = checked(0.9, "[0, 1)")
    tau: float = checked(0.005, "(0, 1]")
    learning_rate: float = checked(3e-4, LEARNING_RATE)
    batch_size: int = checked(128, BATCH)
    utd: int = checked(10, "[1, 1000]")  # gradient steps per update
    n_step: int = checked(1, "[1, 1000]")  # TD targets over this many chunk steps of rewards (within the episode) before bootstrapping
    target_entropy: float = checked(0.0, "[-1e4, 1e4]")
    init_temperature: float = checked(0.02, "(0, 1e4]")
    # Keep -alpha log pi in the critic's TD target (SAC as published). With a sparse 0/1 reward and a
    # 28-dim latent the bonus (alpha x ~28 nats per step) swamps the reward; False keeps the entropy
    # regulariser in the actor's loss only.
    backup_entropy: bool = False
    action_magnitude: float = checked(1.5, "(0, 10]")  # the actor's noise lies in [-magnitude, magnitude]
    na_distill_steps: int = checked(5, "[1, 1000]")  # DSRL-NA: Q^W regression steps (each on fresh noise) per distillation
    # DSRL-NA: distil Q^W only on every n-th gradient step (global step % n == 0); the other steps
    # still train Q^A and the actor (against the current Q^W) but skip the fresh-noise sampler calls
    # and the regression. 1: distil on every gradient step.
    na_distill_every: int = checked(10, "[1, 1e6]")
    # policy_embedding (vector obs + frozen policy features) | observation
    features: str = checked("policy_embedding", choices=("policy_embedding", "observation"))
    # agent.features=observation with cameras: the agent's own image encoder (agents/dsrl/encoder.py), trained by the critic's loss.
    encoder_image_keys: list[str] = checked([], nonempty=True)  # camera keys it reads; empty: every uint8 image key
    encoder_channels: list[int] = checked([32, 32, 32, 32], CHANNELS, min_length=1)  # stride-2 3x3 convs
    encoder_dim: int = checked(64, WIDTH)  # features per camera (Linear -> LayerNorm -> tanh)
    # shift (DrQ: random +-image_shift_pixels, border replicated; training only) | none
    image_augmentation: str = checked("shift", choices=("shift", "none"))
    image_shift_pixels: int = checked(4, "[0, 64]")
    seed: int = checked(0, SEED)
    # sim_cpu | sim_cpu_na | widowx_real | franka_real: paper settings, applied beneath file and overrides
    # (checked against PRESETS in load_config)
    preset: str = checked("")


@dataclass
class TrainConfig:
    """The DSRL fine-tuning loop."""

    out_dir: str = checked("runs/train", nonempty=True)
    env_steps: int = checked(5000, "[0, 1e9]")
    warm_start_episodes: int = checked(10, EPISODES)  # base-policy rollouts (w ~ N(0, I)) before the first update
    updates_per_chunk: int = checked(1, "[0, 1000]")  # agent updates (each agent.utd gradient steps) per collected chunk step
    eval_every_steps: int = checked(1000, "[1, 1e9]")
    eval_episodes: int = checked(20, EPISODES)  # trials per periodic evaluation (the learning curve)
    final_eval_episodes: int = checked(0, EPISODES)  # trials of the evaluation at the end of the budget; 0: train.eval_episodes
    checkpoint_every_episodes: int = checked(1, EPISODES)  # 0: only at the end
    buffer_capacity: int = checked(200_000, "[2, 1e7]")  # time indices
    video_every_episodes: int = checked(0, EPISODES)  # 0: no videos
    wandb: str = checked("offline", choices=("offline", "online", "disabled"))
    action_space_baseline: bool = False  # plain SAC on the robot's actions instead of DSRL (a baseline)
    record: bool = True  # record every episode (warm start, training, evaluation) into out_dir (LeRobot v2.1 layout)
    seed_runs: list[str] = checked([], nonempty=True)  # recorded run folders whose complete episodes seed the replay buffer


@dataclass
class RewardConfig:
    """Where rewards come from (rewards/registry.py), how they are shaped and what ends an episode."""

    backend: str = checked("sim_truth", choices=REWARD_BACKENDS)
    # sparse: the episode reward at its end | dense: progress deltas per chunk step (backends with
    # progress) | step_penalty: -1 per chunk step, 0 on success
    form: str = checked("sparse", choices=("sparse", "dense", "step_penalty"))
    model: str = checked("")  # roboreward / robometer: a local checkpoint folder or a hub id (e.g. teetone/RoboReward-8B)
    # robometer: where its processor comes from, a hub id or a local copy; "" = the base model its config.yaml names
    base_model: str = checked("")
    server_url: str = checked("")  # roboreward: an OpenAI-compatible server's base URL; "" runs the model in this process
    server_timeout_s: float = checked(60.0, "(0, 3600]")  # roboreward over server_url: total seconds per try (connect, send, wait, whole answer)
    server_retries: int = checked(3, "[0, 100]")  # roboreward over server_url: further tries after a timeout, a 5xx or a 429 (with backoff)
    # the environment variable holding the server's API key, if it needs one
    server_api_key_env: str = checked("DSRL_REWARD_API_KEY")
    device: str = checked("auto", nonempty=True)  # where a local model runs
    camera: str = checked("")  # the camera the backend watches; "" = the first camera
    num_frames: int = checked(0, "[0, 256]")  # frames per model query; 0 = the backend's own (RoboReward 16, Robometer 8)
    success_score: int = checked(5, "[1, 5]")  # roboreward: the lowest 1-5 score that counts as success
    human_scale: str = checked("binary", choices=("binary", "1-5"))  # human / sim_human
    # What ends an episode early: detector (the success detector on the backend's prefix scores; the
    # human's keys for human backends) | env (the simulator's own success signal) | time_limit (nothing
    # but the time limits) | auto (env for sim_truth; else detector when the backend offers success, else time_limit).
    end_on: str = checked("auto", choices=("auto", "detector", "env", "time_limit"))
    # a prefix (or robometer: a whole episode) whose success probability reaches this counts as success
    success_threshold: float = checked(0.6, "(0, 1]")
    success_window: int = checked(3, "[1, 1000]")  # success when most of the last this-many prefix scores vote success
    score_every_steps: int = checked(1, "[1, 1e5]")  # ask for a prefix score every this-many env steps (stale requests are dropped)
    track_stages: bool = True  # multi-stage tasks: advance the instruction on detected success, show the stage's frames only
    stage_max_steps: list[int] = checked([], "[1, 1e5]")  # per-stage step limits, one per stage; empty: none
    # background (a worker thread) | inline (in the control loop) | auto: inline for sim_truth and humans
    scoring: str = checked("auto", choices=("auto", "background", "inline"))
    # Shadow mode: more backends (names as for backend) that label every episode next to it, off the
    # control loop, without touching rewards or episode ends; their labels go into the recording.
    shadow: list[str] = checked([], choices=REWARD_BACKENDS)
    # sim_truth_noisy: the simulator's truth with injected label noise (rewards/noisy.py), e.g. as a shadow
    noisy_false_positive_rate: float = checked(0.2, PROBABILITY)  # a failure labelled success
    noisy_false_negative_rate: float = checked(0.0, PROBABILITY)  # a success labelled failure
    noisy_score_error_rate: float = checked(0.25, PROBABILITY)  # the 1-5 score moved by 2 points


@dataclass
class Config:
    robot: RobotConfig = field(default_factory=RobotConfig)
    cameras: list[CameraConfig] = field(
        default_factory=lambda: [CameraConfig(name="third_person"), CameraConfig(name="wrist", view="wrist")]
    )
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    run: RunConfig = field(default_factory=RunConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    demos: DemosConfig = field(default_factory=DemosConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)


# The simulator on a 2-core CPU (= the defaults), tuned on the monkey task with a sparse success reward:
# magnitude 1.5 as in DSRL (inside +-1 the base policy cannot get out of some of its hovering states:
# a greedy lookahead over noise clipped to +-1 solves 4 of 8 scenes where the agent failed, over
# +-1.5 all 8) and gamma 0.9 (a hover that can no longer succeed loses its over-estimated value faster
# under bootstrapping); with both, DSRL-SAC ended at 86 / 80 / 64 % over seeds 0-2, against 48 / 66 / 50 %
# with magnitude 1 and gamma 0.97. 5 critics against over-estimation, no entropy in the critic's target
# (it swamped the 0/1 reward). For CPU time:
# batches of 128 (final success within the seed-to-seed spread of 256's, at 60 % of the update's time), and
# DSRL-NA distils Q^W (5 regression steps) on every 10th gradient step only, since each distillation
# costs na_distill_steps base-policy sampler calls (every 5th step: the same success, 18 % slower).
SIM_CPU: dict[str, Any] = {
    "agent.hidden_dim": 256, "agent.utd": 10, "agent.gamma": 0.9, "agent.action_magnitude": 1.5,
    "agent.num_critics": 5, "agent.backup_entropy": False, "agent.init_temperature": 0.02,
    "agent.batch_size": 128, "agent.na_distill_steps": 5, "agent.na_distill_every": 10,
    "train.warm_start_episodes": 10,
}

# Hyperparameters from the papers, as dotted overrides (the `agent.preset` key picks one).
PRESETS: dict[str, dict[str, Any]] = {
    "sim_cpu": SIM_CPU,
    # DSRL-NA on the simulator: sim_cpu with magnitude 1 and gamma 0.97, where NA did better than with
    # sim_cpu's 1.5 and 0.9 (seeds 0 and 1: 78 % and 86 % against 62 % and 62 %).
    "sim_cpu_na": {**SIM_CPU, "agent.algorithm": "dsrl_na", "agent.gamma": 0.97, "agent.action_magnitude": 1.0},
    # RoboReward paper, Table 9: real WidowX 250 (SAC as in DSRL's released code: 2 critics, entropy backup).
    "widowx_real": {"agent.hidden_dim": 1024, "agent.utd": 30, "agent.batch_size": 256, "agent.gamma": 0.97, "agent.action_magnitude": 1.5,
                    "agent.num_critics": 2, "agent.backup_entropy": True, "agent.init_temperature": 1.0,
                    "agent.na_distill_steps": 10, "agent.na_distill_every": 1,
                    "train.warm_start_episodes": 20, "train.env_steps": 6000, "task.max_steps": 70},
    # DSRL's pi0 port on a real Franka: 15 Hz, <= 200 steps.
    "franka_real": {"agent.hidden_dim": 1024, "agent.utd": 30, "agent.batch_size": 256, "agent.gamma": 0.99, "agent.action_magnitude": 2.5,
                    "agent.num_critics": 2, "agent.backup_entropy": True, "agent.init_temperature": 1.0,
                    "agent.na_distill_steps": 10, "agent.na_distill_every": 1,
                    "robot.control_hz": 15.0, "task.max_steps": 200},
}


def config_fields(cls: type = None, prefix: str = "") -> Iterator[tuple[str, Any, Allowed | None]]:
    """(dotted key, type, what it accepts) of every leaf field of the config schema; a list of
    sections reads `cameras[].width`. Bool fields have no `Allowed` (OmegaConf checks their type)."""
    cls = Config if cls is None else cls
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, key = hints[f.name], f"{prefix}{f.name}"
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if dataclasses.is_dataclass(inner):
            yield from config_fields(inner, f"{key}[]." if inner is not hint else f"{key}.")
        else:
            yield key, hint, f.metadata.get(_ALLOWED)


def _leaf_problems(section: Any, prefix: str = "") -> Iterator[str]:
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        value, hint, key = getattr(section, f.name), hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaf_problems(value, f"{key}.")
        elif isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
            for i, item in enumerate(value):
                yield from _leaf_problems(item, f"{key}[{i}].")
        elif _ALLOWED in f.metadata:
            problem = _field_problem(key, value, hint, f.metadata[_ALLOWED])
            if problem:
                yield problem


def _relation_problems(cfg: Config) -> Iterator[str]:
    """The relations between fields that no single field's range can say."""
    s, robot = cfg.safety, cfg.robot
    boxes = {"xyz": ("workspace_low", "workspace_high"), "rpy": ("rpy_low", "rpy_high")}
    for low_key, high_key in boxes.values():
        for axis, (low, high) in enumerate(zip(getattr(s, low_key), getattr(s, high_key))):
            if not low < high:
                yield (f"safety.{low_key}[{axis}] = {low} is not below safety.{high_key}[{axis}] = {high}; the safety box "
                       "needs each low smaller than its high, on every axis.")
    for what, (low_key, high_key) in boxes.items():
        start, low, high = getattr(robot, f"start_{what}"), getattr(s, low_key), getattr(s, high_key)
        if not all(lo <= x <= hi for x, lo, hi in zip(start, low, high)):
            yield (f"robot.start_{what} = {start} is outside the safety box from safety.{low_key} = {low} to "
                   f"safety.{high_key} = {high}; every reset would take the arm there, so move the start inside the box or widen it.")
    names = [c.name for c in cfg.cameras]
    for i, name in enumerate(names):
        if name in names[:i]:
            yield f"cameras[{i}].name = {name!r} is taken by an earlier camera; it must be unique."
    p, a = cfg.policy, cfg.agent
    if p.inference_steps > p.train_diffusion_steps:
        yield (f"policy.inference_steps = {p.inference_steps} is out of range; it must be in "
               f"[1, policy.train_diffusion_steps = {p.train_diffusion_steps}].")
    if a.backup_subset > a.num_critics:
        yield f"agent.backup_subset = {a.backup_subset} is out of range; it must be in [0, agent.num_critics = {a.num_critics}]."


def check_fields(cfg: Config) -> None:
    """Each field against what it declares it accepts; raises ConfigError naming the first one that does not."""
    for problem in _leaf_problems(cfg):
        raise ConfigError(problem)


def check_config(cfg: Config) -> Config:
    """`check_fields`, then the relations between fields; returns `cfg` unchanged."""
    check_fields(cfg)
    for problem in _relation_problems(cfg):
        raise ConfigError(problem)
    return cfg


def config_dirs() -> list[Path]:
    """Where named configs are looked up: $DSRL_REAL_CONFIG_DIR, the source tree, the installed share
    (pip's, under sys.prefix, and colcon's, under each prefix of $AMENT_PREFIX_PATH)."""
    dirs = [Path(p) for p in os.environ.get("DSRL_REAL_CONFIG_DIR", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent.parent / "configs")
    prefixes = [sys.prefix, *(p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p)]
    dirs += [Path(prefix) / "share" / "dsrl_real" / "configs" for prefix in prefixes]
    return dirs


def resolve_config_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    for directory in config_dirs():
        if (directory / stem).is_file():
            return directory / stem
    known = sorted({p.stem for d in config_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"No config file '{name_or_path}'; give a path to a YAML file or one of: {', '.join(known)}.")


def _valid_keys(path: str) -> list[str]:
    """The field names of the config section at dotted `path` ('' for the top level)."""
    node: Any = Config
    for part in re.sub(r"\[\d*\]", "", path).split("."):
        hint = typing.get_type_hints(node).get(part)
        hint = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if not dataclasses.is_dataclass(hint):
            break
        node = hint
    return [f.name for f in dataclasses.fields(node)]


def _section_of(err: Exception, full_key: str) -> str:
    """The dotted path of the section an unknown key was found in."""
    if "." in full_key:
        return full_key.rsplit(".", 1)[0]
    owner = getattr(err, "object_type", None)
    for f in dataclasses.fields(Config):
        hint = typing.get_type_hints(Config)[f.name]
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if owner is not None and inner is owner and owner is not Config:
            return f"{f.name}[]" if hint is not inner else f.name
    return ""


def _explain(err: Exception, source: str, key: str = "") -> ConfigError:
    full_key = str(getattr(err, "full_key", "") or key or getattr(err, "key", "") or "")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        section = _section_of(err, full_key)
        where = f"under '{section}'" if section else "at the top level"
        return ConfigError(
            f"Unknown config key '{full_key}' in {source}; valid keys {where} are: {', '.join(_valid_keys(section))}."
        )
    reason = str(getattr(err, "msg", None) or err).splitlines()[0]
    converting = isinstance(err, ValidationError) and reason.startswith("Value '")  # e.g. 'a' in a list of floats
    if not converting and (isinstance(err, (TypeError, IndexError)) or "[" in full_key):
        return ConfigError(f"Config key '{key or full_key}' in {source} does not exist; list entries can only be changed, add new ones in a YAML file.")
    if isinstance(err, ValidationError) and full_key:
        return ConfigError(f"Config key '{full_key}' in {source} has the wrong type: {reason.rstrip('.')}.")
    return ConfigError(f"Invalid configuration in {source}: {reason.rstrip('.')}; `dsrl-real config` shows every section and its types.")


def _compose(base, file_layers: list[tuple[Any, str]], overrides) -> Any:
    merged = base
    for layer, source in file_layers:
        try:
            merged = OmegaConf.merge(merged, layer)
        except (OmegaConfBaseException, TypeError) as err:
            raise _explain(err, source) from err
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override '{item}' is not of the form key=value, e.g. robot.control_hz=10.")
        try:
            OmegaConf.update(merged, key, yaml.safe_load(raw) if raw else "", merge=True)
        except (OmegaConfBaseException, TypeError, IndexError) as err:
            raise _explain(err, f"override '{item}'", key) from err
    return merged


def load_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The embedded default, then `agent.preset`'s values, then the YAML file (name or path), then
    `key=value` overrides; every value checked (`check_config`)."""
    layers: list[tuple[Any, str]] = []
    if path:
        file = resolve_config_path(path)
        try:
            loaded = OmegaConf.load(file)
        except OSError:
            raise  # unreadable, not malformed: the CLI names the path and the reason
        except Exception as err:  # YAML syntax errors come in several types
            raise ConfigError(f"Could not parse {file}: {str(err).splitlines()[0]}; fix the YAML syntax.") from err
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"{file} holds a list at its top level; a config file holds sections such as robot: and agent:, "
                              "as `dsrl-real config` prints them.")
        layers.append((loaded, str(file)))
    merged = _compose(OmegaConf.structured(Config), layers, overrides)
    preset = merged.agent.preset
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"Unknown agent.preset '{preset}'; choose one of: {', '.join(PRESETS)}.")
        base = OmegaConf.structured(Config)
        for key, value in PRESETS[preset].items():
            OmegaConf.update(base, key, value, merge=True)
        merged = _compose(base, layers, overrides)
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _explain(err, path or "the configuration") from err
    return check_config(cfg)  # type: ignore[arg-type]


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
