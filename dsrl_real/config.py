"""Typed configuration: dataclass defaults (the embedded default is the simulated WidowX monkey
task), overlaid by a YAML file from `configs/`, overlaid by dotted command-line overrides such as
`robot.control_hz=10`. Built on OmegaConf structured configs, which reject unknown keys and wrong
types; we turn those rejections into one sentence that names the valid keys."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration problem the user can fix; the message says how."""


@dataclass
class FrankaConfig:
    """robot.kind=franka: franka_ros2 topics and actions (defaults: fr3, no namespace; see robots/franka.py)."""

    command_topic: str = "/cartesian_impedance_controller/equilibrium_pose"  # a controller taking PoseStamped targets
    pose_topic: str = "/franka_robot_state_broadcaster/current_pose"
    joint_state_topic: str = "/franka_robot_state_broadcaster/measured_joint_states"
    gripper_namespace: str = "/fr3_gripper"  # franka_gripper: <ns>/homing, <ns>/move, <ns>/grasp, <ns>/joint_states
    base_frame: str = "fr3_link0"
    # Orientations (start_rpy, home_rpy, safety.rpy_*) are relative to this one: R = R(rpy) @ R(reference_rpy).
    # The default points the gripper straight down, so rpy stays near 0 and never wraps at +-pi.
    reference_rpy: list[float] = field(default_factory=lambda: [3.141592653589793, 0.0, 0.0])
    home_xyz: list[float] = field(default_factory=lambda: [0.35, 0.0, 0.5])  # out of the way for a scene reset
    home_rpy: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    move_speed: float = 0.1  # m/s of the interpolated reset and home moves
    gripper_max_width: float = 0.08  # Franka Hand
    gripper_speed: float = 0.1  # m/s
    grasp_force: float = 20.0  # N
    grasp_epsilon: float = 0.08  # m either side of a fully closed grasp: any object width counts as grasped
    gripper_timeout_s: float = 5.0  # bounded wait for homing and opening
    state_timeout_s: float = 0.5  # the arm's state may be at most this old


@dataclass
class RobotConfig:
    kind: str = "sim"  # sim | widowx | franka
    robot_model: str = "wx250s"
    control_hz: float = 5.0
    start_xyz: list[float] = field(default_factory=lambda: [0.25, 0.0, 0.16])
    start_rpy: list[float] = field(default_factory=lambda: [0.0, 1.2, 0.0])
    driver_timeout_s: float = 15.0  # how long to wait for the hardware driver before giving up
    # widowx: torque off on close, once the measured joints show the arm resting in its sleep pose (a
    # sleep move that fell short keeps the torque on, so the arm cannot drop)
    torque_off_on_close: bool = True
    franka: FrankaConfig = field(default_factory=FrankaConfig)


@dataclass
class CameraConfig:
    name: str = MISSING
    kind: str = "sim"  # sim | realsense | ros_topic
    view: str = "third_person"  # sim only: third_person | wrist
    width: int = 128
    height: int = 128
    serial: str = ""  # realsense only: the device's serial number
    topic: str = ""  # ros_topic only: a sensor_msgs/Image topic, e.g. /camera/camera/color/image_raw
    fps: int = 30
    timeout_s: float = 1.0


@dataclass
class SafetyConfig:
    workspace_low: list[float] = field(default_factory=lambda: [0.15, -0.20, 0.02])
    workspace_high: list[float] = field(default_factory=lambda: [0.42, 0.20, 0.25])
    rpy_low: list[float] = field(default_factory=lambda: [-0.5, 0.7, -0.8])
    rpy_high: list[float] = field(default_factory=lambda: [0.5, 1.5, 0.8])
    max_step_xyz: float = 0.05
    max_step_rpy: float = 0.25


@dataclass
class TaskConfig:
    name: str = "monkey"  # a simulated task (monkey | drawer) or any name for a real task
    instruction: str = ""  # empty: the simulated task's own
    stages: list[str] = field(default_factory=list)  # empty: the simulated task's own
    max_steps: int = 70
    terminate_on_success: bool = True


@dataclass
class EnvConfig:
    real_time: bool = False  # keep the control rate with the rate keeper (always on hardware)
    object_state: bool = True  # simulation only: add privileged object state to observations
    max_frame_age_s: float = 0.5  # hardware: a camera frame older than this stops the episode (0: no check)


@dataclass
class RunConfig:
    seed: int = 0
    episodes: int = 10
    eval_episodes: int = 50
    out_dir: str = "runs"
    expert_noise: float = 0.0


@dataclass
class PolicyConfig:
    """The diffusion base policy's architecture and sampler."""

    checkpoint: str = ""  # a pretrained policy file; empty: none
    external: str = ""  # "package.module:factory" returning any BasePolicy (see README); used instead of checkpoint
    chunk_size: int = 4
    vector_keys: list[str] = field(default_factory=lambda: ["proprio", "object_state"])
    image_keys: list[str] = field(default_factory=list)  # e.g. [third_person_image]; a goal image is one more key
    hidden_dim: int = 256
    num_layers: int = 3
    embed_dim: int = 128
    conv_channels: list[int] = field(default_factory=lambda: [16, 32, 32, 32])
    train_diffusion_steps: int = 100
    inference_steps: int = 8


@dataclass
class DemosConfig:
    """Scripted-expert demonstrations collected in simulation."""

    out_dir: str = "runs/demos"
    episodes: int = 20
    expert_noise: float = 0.3
    successful_only: bool = False
    # npz: one .npz per episode | lerobot: recorded like any run (recording.RunRecorder: parquet + mp4
    # videos, kind "demo", failed attempts kept); pretraining reads either
    format: str = "npz"


@dataclass
class PretrainConfig:
    """Imitation pretraining of the base policy."""

    demos: str = "runs/demos"
    out_dir: str = "runs/policy"
    steps: int = 2000
    batch_size: int = 256
    learning_rate: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.995
    val_fraction: float = 0.1
    eval_every: int = 500
    checkpoint_every: int = 1000
    seed: int = 0


@dataclass
class AgentConfig:
    """DSRL: SAC in the base policy's latent-noise space. Defaults: the small CPU preset for the simulator."""

    algorithm: str = "dsrl_sac"  # dsrl_sac | dsrl_na
    hidden_dim: int = 256
    num_layers: int = 3
    activation: str = "tanh"  # tanh | relu | gelu
    num_critics: int = 5
    critic_backup: str = "min"  # min | mean over the critic ensemble, in the TD target
    backup_subset: int = 0  # min backup over a random this-many of the critics per gradient step (REDQ: 2; SAC's Q, NA's Q^A); 0: all
    actor_objective: str = "min"  # min | mean over the critic ensemble, in the actor's loss (REDQ: mean)
    gamma: float = 0.9
    tau: float = 0.005
    learning_rate: float = 3e-4
    batch_size: int = 128
    utd: int = 10  # gradient steps per update
    n_step: int = 1  # TD targets over this many chunk steps of rewards (within the episode) before bootstrapping
    target_entropy: float = 0.0
    init_temperature: float = 0.02
    # Keep -alpha log pi in the critic's TD target (SAC as published). With a sparse 0/1 reward and a
    # 28-dim latent the bonus (alpha x ~28 nats per step) swamps the reward; False keeps the entropy
    # regulariser in the actor's loss only.
    backup_entropy: bool = False
    action_magnitude: float = 1.5  # the actor's noise lies in [-magnitude, magnitude]
    na_distill_steps: int = 5  # DSRL-NA: Q^W regression steps (each on fresh noise) per distillation
    # DSRL-NA: distil Q^W only on every n-th gradient step (global step % n == 0); the other steps
    # still train Q^A and the actor (against the current Q^W) but skip the fresh-noise sampler calls
    # and the regression. 1: distil on every gradient step.
    na_distill_every: int = 10
    features: str = "policy_embedding"  # policy_embedding (vector obs + frozen policy features) | observation
    # agent.features=observation with cameras: the agent's own image encoder (encoders.py), trained by the critic's loss.
    encoder_image_keys: list[str] = field(default_factory=list)  # camera keys it reads; empty: every uint8 image key
    encoder_channels: list[int] = field(default_factory=lambda: [32, 32, 32, 32])  # stride-2 3x3 convs
    encoder_dim: int = 64  # features per camera (Linear -> LayerNorm -> tanh)
    image_augmentation: str = "shift"  # shift (DrQ: random +-image_shift_pixels, border replicated; training only) | none
    image_shift_pixels: int = 4
    seed: int = 0
    preset: str = ""  # sim_cpu | sim_cpu_na | widowx_real | franka_real: paper settings, applied beneath file and overrides


@dataclass
class TrainConfig:
    """The DSRL fine-tuning loop."""

    out_dir: str = "runs/train"
    env_steps: int = 5000
    warm_start_episodes: int = 10  # base-policy rollouts (w ~ N(0, I)) before the first update
    updates_per_chunk: int = 1  # agent updates (each agent.utd gradient steps) per collected chunk step
    eval_every_steps: int = 1000
    eval_episodes: int = 20  # trials per periodic evaluation (the learning curve)
    final_eval_episodes: int = 0  # trials of the evaluation at the end of the budget; 0: train.eval_episodes
    checkpoint_every_episodes: int = 1
    buffer_capacity: int = 200_000
    video_every_episodes: int = 0  # 0: no videos
    wandb: str = "offline"  # offline | online | disabled
    action_space_baseline: bool = False  # plain SAC on the robot's actions instead of DSRL (a baseline)
    record: bool = True  # record every episode (warm start, training, evaluation) into out_dir (LeRobot v2.1 layout)
    seed_runs: list[str] = field(default_factory=list)  # recorded run folders whose complete episodes seed the replay buffer


@dataclass
class RewardConfig:
    """Where rewards come from (rewards/registry.py), how they are shaped and what ends an episode."""

    backend: str = "sim_truth"  # sim_truth | roboreward | robometer | human | sim_human
    # sparse: the episode reward at its end | dense: progress deltas per chunk step (backends with
    # progress) | step_penalty: -1 per chunk step, 0 on success
    form: str = "sparse"
    model: str = ""  # roboreward / robometer: a local checkpoint folder or a hub id (e.g. teetone/RoboReward-8B)
    server_url: str = ""  # roboreward: an OpenAI-compatible server's base URL; "" runs the model in this process
    server_timeout_s: float = 60.0  # roboreward over server_url: seconds per request before it counts as failed
    server_retries: int = 3  # roboreward over server_url: further tries after a timeout, a 5xx or a 429 (with backoff)
    server_api_key_env: str = "DSRL_REWARD_API_KEY"  # the environment variable holding the server's API key, if it needs one
    device: str = "auto"  # where a local model runs
    camera: str = ""  # the camera the backend watches; "" = the first camera
    num_frames: int = 0  # frames per model query; 0 = the backend's own (RoboReward 16, Robometer 8)
    success_score: int = 5  # roboreward: the lowest 1-5 score that counts as success
    human_scale: str = "binary"  # human / sim_human: binary | 1-5
    # What ends an episode early: detector (the success detector on the backend's prefix scores; the
    # human's keys for human backends) | env (the simulator's own success signal) | time_limit (nothing
    # but the time limits) | auto (env for sim_truth; else detector when the backend offers success, else time_limit).
    end_on: str = "auto"
    success_threshold: float = 0.6  # a prefix (or robometer: a whole episode) whose success probability reaches this counts as success
    success_window: int = 3  # success when most of the last this-many prefix scores vote success
    score_every_steps: int = 1  # ask for a prefix score every this-many env steps (stale requests are dropped)
    track_stages: bool = True  # multi-stage tasks: advance the instruction on detected success, show the stage's frames only
    stage_max_steps: list[int] = field(default_factory=list)  # per-stage step limits, one per stage; empty: none
    scoring: str = "auto"  # background (a worker thread) | inline (in the control loop) | auto: inline for sim_truth and humans
    # Shadow mode: more backends (names as for backend) that label every episode next to it, off the
    # control loop, without touching rewards or episode ends; their labels go into the recording.
    shadow: list[str] = field(default_factory=list)
    # sim_truth_noisy: the simulator's truth with injected label noise (rewards/noisy.py), e.g. as a shadow
    noisy_false_positive_rate: float = 0.2  # a failure labelled success
    noisy_false_negative_rate: float = 0.0  # a success labelled failure
    noisy_score_error_rate: float = 0.25  # the 1-5 score moved by 2 points


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
    if isinstance(err, (TypeError, IndexError)) or "[" in full_key:
        return ConfigError(f"Config key '{key or full_key}' in {source} does not exist; list entries can only be changed, add new ones in a YAML file.")
    if isinstance(err, ValidationError):
        return ConfigError(f"Config key '{full_key}' in {source} has the wrong type: {err.msg.splitlines()[0]}.")
    return ConfigError(f"Invalid configuration in {source}: {str(err).splitlines()[0]}")


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
    `key=value` overrides."""
    layers: list[tuple[Any, str]] = []
    if path:
        file = resolve_config_path(path)
        try:
            layers.append((OmegaConf.load(file), str(file)))
        except Exception as err:  # YAML syntax errors come in several types
            raise ConfigError(f"Could not parse {file}: {str(err).splitlines()[0]}; fix the YAML syntax.") from err
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
    return cfg  # type: ignore[return-value]


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
