"""The configuration's schema: one dataclass per section, each field with its default and what it
accepts next to it (a `Literal` type for choices, `checked(default, "(0, 1]")` for numbers, text and
list sizes; see checks.py). The embedded default is the simulated WidowX monkey task.

`check_config` holds a config to those declarations and to the few relations between fields, and
names the dotted key, the value and the allowed range of the first one broken."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from omegaconf import MISSING

from .checks import Allowed, ConfigError, allowed_of, checked, field_problem, plain_type

# Choices shared with the modules that act on them (tests/test_config_values.py keeps the copies equal).
RobotKind = Literal["sim", "widowx", "franka"]
CameraKind = Literal["sim", "realsense", "ros_topic"]
SimView = Literal["third_person", "wrist"]
RealsenseFps = Literal[6, 15, 30, 60]  # the color frame rates every D400 camera offers
RewardBackend = Literal["sim_truth", "roboreward", "robometer", "human", "sim_human", "sim_truth_noisy", "sim_reward_model"]
VerifyMode = Literal["none", "human", "sim_human"]
ROBOT_KINDS, CAMERA_KINDS, SIM_VIEWS, REALSENSE_FPS, REWARD_BACKENDS = (
    typing.get_args(t) for t in (RobotKind, CameraKind, SimView, RealsenseFps, RewardBackend))

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
    kind: RobotKind = "sim"
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
    kind: CameraKind = "sim"
    view: SimView = "third_person"  # sim only
    # 64: what the base policy learns from in minutes on a CPU (docs/training.md); the configs under configs/ set 128
    width: int = checked(64, IMAGE_SIDE)
    height: int = checked(64, IMAGE_SIDE)
    serial: str = checked("")  # realsense only: the device's serial number; empty: the first camera found
    topic: str = checked("")  # ros_topic only: a sensor_msgs/Image topic, e.g. /camera/camera/color/image_raw
    fps: RealsenseFps = 30  # realsense only
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
    # the simulator's exact object positions as an observation: privileged, simulation only (no robot has them);
    # `--obs state` (config/observations.py) turns it on with the policy keys that read it
    object_state: bool = False
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
    vector_keys: list[str] = checked(["proprio"], nonempty=True)  # object_state too only with env.object_state (simulation)
    # `<camera name>_image` of configured cameras; the default cameras' (empty: a state-only policy)
    image_keys: list[str] = checked(["third_person_image", "wrist_image"], nonempty=True)
    hidden_dim: int = checked(256, WIDTH)
    num_layers: int = checked(3, LAYERS)
    embed_dim: int = checked(128, WIDTH)
    conv_channels: list[int] = checked([16, 32, 32], CHANNELS, min_length=1)  # one 3x3 stride-2 conv each
    conv_stem: int = checked(4, "[1, 16]")  # the first conv's stride (and kernel, when over 3): 4 reads 4x4 patches
    train_diffusion_steps: int = checked(100, "[1, 1e4]")
    inference_steps: int = checked(8, "[1, 1e4]")  # at most train_diffusion_steps


@dataclass
class DemosConfig:
    """Scripted-expert demonstrations collected in simulation."""

    out_dir: str = checked("runs/demos", nonempty=True)
    episodes: int = checked(20, EPISODES)
    expert_noise: float = checked(0.3, "[0, 10]")
    successful_only: bool = False
    # lerobot: a LeRobot v3.0 dataset, recorded like any run (recording.RunRecorder: parquet + mp4 videos,
    # kind "demo", failed attempts kept) | npz: one .npz per episode; pretraining reads either
    format: Literal["lerobot", "npz"] = "lerobot"


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
    image_shift_pixels: int = checked(4, "[0, 64]")  # DrQ's random shift of each training frame (+- this many pixels); 0: none


@dataclass
class AgentConfig:
    """DSRL: SAC in the base policy's latent-noise space. Defaults: the small CPU preset for the simulator."""

    algorithm: Literal["dsrl_sac", "dsrl_na"] = "dsrl_sac"
    hidden_dim: int = checked(256, WIDTH)
    num_layers: int = checked(3, LAYERS)
    activation: Literal["tanh", "relu", "gelu"] = "tanh"
    num_critics: int = checked(5, "[1, 100]")
    critic_backup: Literal["min", "mean"] = "min"  # over the critic ensemble, in the TD target
    # min backup over a random this-many of the critics per gradient step (REDQ: 2; SAC's Q, NA's Q^A); 0: all;
    # at most num_critics
    backup_subset: int = checked(0, "[0, 100]")
    actor_objective: Literal["min", "mean"] = "min"  # over the critic ensemble, in the actor's loss (REDQ: mean)
    gamma: float = checked(0.9, "[0, 1)")
    tau: float = checked(0.005, "(0, 1]")
    # Evaluation acts with the mean of an averaged actor (and own encoder): Polyak at this rate per gradient
    # step (1e-4: about the last 10,000 steps, 20 episodes of the simulator at utd 10); 0: the live actor.
    eval_average_tau: float = checked(0.0, "[0, 1]")
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
    features: Literal["policy_embedding", "observation"] = "policy_embedding"
    # agent.features=observation with cameras: the agent's own image encoder (agents/dsrl/encoder.py), trained by the critic's loss.
    encoder_image_keys: list[str] = checked([], nonempty=True)  # camera keys it reads; empty: every uint8 image key
    encoder_channels: list[int] = checked([32, 32, 32, 32], CHANNELS, min_length=1)  # stride-2 3x3 convs
    encoder_dim: int = checked(64, WIDTH)  # features per camera (Linear -> LayerNorm -> tanh)
    # shift (DrQ: random +-image_shift_pixels, border replicated; training only) | none
    image_augmentation: Literal["shift", "none"] = "shift"
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
    # trials of the evaluation at the end of the budget, and of the base policy's at step 0; 0: train.eval_episodes
    final_eval_episodes: int = checked(0, EPISODES)
    checkpoint_every_episodes: int = checked(1, EPISODES)  # 0: only at the end
    buffer_capacity: int = checked(200_000, "[2, 1e7]")  # time indices
    # time indices per replay-buffer segment file; a checkpoint writes the segments changed since the previous one
    # (a resumed run keeps its checkpoint's)
    buffer_segment_slots: int = checked(512, "[1, 1e7]")
    video_every_episodes: int = checked(0, EPISODES)  # 0: no videos
    wandb: Literal["offline", "online", "disabled"] = "offline"
    action_space_baseline: bool = False  # plain SAC on the robot's actions instead of DSRL (a baseline)
    # the baseline's inputs: observation (the vectors and its own image encoder, DrQ-style, trained from scratch) |
    # policy_embedding (the vectors and the frozen embedding of policy.checkpoint's base policy: what DSRL reads)
    action_space_features: Literal["observation", "policy_embedding"] = "observation"
    record: bool = True  # record every episode (warm start, training, evaluation) into out_dir (a LeRobot v3.0 dataset)
    seed_runs: list[str] = checked([], nonempty=True)  # recorded run folders whose complete episodes seed the replay buffer
    # DSRL-SAC: seeded chunk steps recorded without noise (demonstrations, teleoperation) get the noise whose chunk
    # through the frozen sampler comes closest (fit; DiffusionPolicy.fit_noise), so its critic learns from them; none:
    # they stay masked out of its critic
    seed_noise: Literal["fit", "none"] = "fit"


    @property
    def final_trials(self) -> int:
        """Trials of the evaluation at the end of the budget and of the base policy's at step 0."""
        return self.final_eval_episodes or self.eval_episodes


@dataclass
class LearnerConfig:
    """Where the gradient steps run (train/remote_learner.py). inline: a thread of the robot's process,
    lockstep with the episodes, deterministic for a seed. ray: a Ray actor (pip install -e ".[ray]"),
    on this machine or a cluster's node, that the robot loop waits on only within `max_policy_lag`."""

    mode: Literal["inline", "ray"] = "inline"
    address: str = checked("")  # ray: "" starts a local Ray (ray.init()); else the cluster's address (e.g. auto, ray://gpu-box:10001)
    # ray: how many learner versions (one per absorbed episode) the acting parameters may trail the episodes sent;
    # 0 is lockstep, whose results equal inline mode's for the same seed
    max_policy_lag: int = checked(0, "[0, 1e6]")
    num_gpus: float = checked(0.0, "[0, 64]")  # ray: GPUs the learner actor asks its node for
    connect_timeout_s: float = checked(60.0, "(0, 3600]")  # ray: the longest wait to reach Ray and the learner, or for an acknowledgement
    # ray: the longest the robot waits at an episode boundary for parameters within max_policy_lag; past it the episode
    # runs with the parameters it has, and says so
    policy_wait_s: float = checked(600.0, "(0, 86400]")
    # ray: when the learner goes away mid-run the robot finishes its episode, then goes on with the parameters it has
    # (continue) or holds in its start pose until the learner is back (pause); either way the learner, once back, takes
    # in from the recording every episode it had not acknowledged
    on_loss: Literal["continue", "pause"] = "continue"
    # ray: this side starts the learner actor when none runs under the run's name (at the start and after losing it);
    # false: it waits, up to learner.wait_s, for one started elsewhere from the same config
    spawn: bool = True
    # ray: the longest the robot waits for a learner to come up or back (spawn=false, on_loss=pause, the run's end)
    wait_s: float = checked(600.0, "(0, 86400]")


@dataclass
class ActorsConfig:
    """Who acts for the run (train/fleet.py). 1: this process's robot alone. N > 1 (learner.mode=ray with a
    simulated robot): N-1 more simulated actors beside it, each a Ray actor with its own id (sim-1, sim-2, ...)
    and seed (run.seed + 1000 * i), acting with the learner's newest parameters and sending it each episode;
    each records into actors/<id>/ of the run folder. This process's robot keeps the run's budget, its
    evaluations and its checkpoints; the others collect until it ends."""

    num: int = checked(1, "[1, 256]")
    # the Ray CPUs each simulated actor reserves; 0: none, they share the CPUs of the node Ray places them on
    num_cpus: float = checked(0.0, "[0, 64]")


@dataclass
class RewardConfig:
    """Where rewards come from (rewards/registry.py), how they are shaped and what ends an episode."""

    backend: RewardBackend = "sim_truth"
    # sparse: the episode reward at its end | dense: progress deltas per chunk step (backends with
    # progress) | step_penalty: -1 per chunk step, 0 on success
    form: Literal["sparse", "dense", "step_penalty"] = "sparse"
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
    human_scale: Literal["binary", "1-5"] = "binary"  # human / sim_human
    # What ends an episode early: detector (the success detector on the backend's prefix scores; the
    # human's keys for human backends) | env (the simulator's own success signal) | time_limit (nothing
    # but the time limits) | auto (env for sim_truth; else detector when the backend offers success, else time_limit).
    end_on: Literal["auto", "detector", "env", "time_limit"] = "auto"
    # a prefix (or robometer: a whole episode) whose success probability reaches this counts as success
    success_threshold: float = checked(0.6, "(0, 1]")
    success_window: int = checked(3, "[1, 1000]")  # success when most of the last this-many prefix scores vote success
    score_every_steps: int = checked(1, "[1, 1e5]")  # ask for a prefix score every this-many env steps (stale requests are dropped)
    track_stages: bool = True  # multi-stage tasks: advance the instruction on detected success, show the stage's frames only
    stage_max_steps: list[int] = checked([], "[1, 1e5]")  # per-stage step limits, one per stage; empty: none
    # background (a worker thread) | inline (in the control loop) | auto: inline for sim_truth and humans
    scoring: Literal["auto", "background", "inline"] = "auto"
    # Shadow mode: more backends (names as for backend) that label every episode next to it, off the
    # control loop, without touching rewards or episode ends; their labels go into the recording.
    shadow: list[RewardBackend] = checked([])
    # sim_truth_noisy: the simulator's truth with injected label noise (rewards/noisy.py), e.g. as a shadow
    noisy_false_positive_rate: float = checked(0.2, PROBABILITY)  # a failure labelled success
    noisy_false_negative_rate: float = checked(0.0, PROBABILITY)  # a success labelled failure
    noisy_score_error_rate: float = checked(0.25, PROBABILITY)  # the 1-5 score moved by 2 points
    # sim_reward_model: a stand-in for a flawed reward model whose false positives cluster on near misses
    # (rewards/stand_in.py); closeness = the simulated human's 1-5 score of a failed episode's final state
    stand_in_near_miss_rate: float = checked(0.3, PROBABILITY)  # P(a failure of closeness 4 is called a success)
    # P(false positive | closeness s) = near_miss_rate * shape[s - 1], s = 1..4; the last entry is 1
    stand_in_false_positive_shape: list[float] = checked([0.0, 0.1, 0.4, 1.0], PROBABILITY, length=4)
    stand_in_false_positive_by_score: list[float] = checked([], PROBABILITY)  # 4 probabilities for closeness 1-4 instead; empty: rate * shape
    stand_in_false_negative_rate: float = checked(0.05, PROBABILITY)  # a success called a failure
    stand_in_score_error_rate: float = checked(0.25, PROBABILITY)  # a failure's 1-5 score one point off (staying on 1-4)
    # an audit.json written by `dsrl-real audit`: replay its measured rates (figures it lacks keep the values above)
    stand_in_from_audit: str = checked("")
    stand_in_audit_backend: str = checked("")  # whose figures in that audit; "" = its only backend
    # Verify positives (rewards/verify.py): a human confirms (y) or rejects (n) each success the backend claims, and
    # the answer is the label training uses | sim_human: the simulated human answers from the simulator's truth
    verify: VerifyMode = "none"
    verify_timeout_s: float = checked(30.0, "(0, 3600]")  # no answer by then (the reset time): the backend's label stands, unverified
    verify_failure_fraction: float = checked(0.0, PROBABILITY)  # also ask about this random share of claimed failures (s/f)
    # 0: ask about every claimed success. N: Dodge's continuous sampling plan (CSP-1): ask about every one until N in a
    # row are confirmed, then about a random verify_sample_fraction of them, until the human rejects one
    verify_clearance: int = checked(0, "[0, 10000]")
    verify_sample_fraction: float = checked(0.25, "(0, 1]")
    verify_warn_false_positive_rate: float = checked(0.2, PROBABILITY)  # warn when the share of claimed successes rejected passes it


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
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    actors: ActorsConfig = field(default_factory=ActorsConfig)


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
            yield key, plain_type(hint), allowed_of(f, hint)


def _leaf_problems(section: Any, prefix: str = "") -> Iterator[str]:
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        value, hint, key = getattr(section, f.name), hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaf_problems(value, f"{key}.")
        elif isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
            for i, item in enumerate(value):
                yield from _leaf_problems(item, f"{key}[{i}].")
        elif (allowed := allowed_of(f, hint)) is not None:
            problem = field_problem(key, value, hint, allowed)
            if problem:
                yield problem


def _observation_problems(cfg: Config) -> Iterator[str]:
    """What the policy reads must be there: object_state only in simulation and when the env adds it,
    each image key a configured camera's."""
    kind = cfg.robot.kind
    if cfg.env.object_state and kind != "sim":
        yield (f"env.object_state=true adds the simulator's exact object positions (privileged, simulation only), which "
               f"robot.kind = {kind!r} does not have; set env.object_state=false.")
    if "object_state" in cfg.policy.vector_keys:
        if kind != "sim":
            yield (f"policy.vector_keys names object_state, the simulator's exact object positions (privileged, simulation "
                   f"only), which robot.kind = {kind!r} does not have; remove it, e.g. policy.vector_keys=[proprio].")
        elif not cfg.env.object_state:
            yield ("policy.vector_keys names object_state (privileged, simulation only), which needs env.object_state=true; "
                   "set it (--obs state does both) or remove it, e.g. policy.vector_keys=[proprio].")
    cameras = [f"{c.name}_image" for c in cfg.cameras]
    for key in cfg.policy.image_keys:
        if key not in cameras:
            yield (f"policy.image_keys names {key!r}, but no configured camera gives it (the cameras give: "
                   f"{', '.join(cameras) or 'none'}); add a camera named {key.removesuffix('_image')!r} to cameras, or leave "
                   "the key out, e.g. policy.image_keys=[] for a policy without images.")


def _stand_in_problems(r: RewardConfig) -> Iterator[str]:
    shape, by_score = r.stand_in_false_positive_shape, r.stand_in_false_positive_by_score
    if shape[-1] != 1.0:
        yield (f"reward.stand_in_false_positive_shape = {shape} ends in {shape[-1]}, but its last entry (closeness 4) must be 1, "
               "as reward.stand_in_near_miss_rate is the false-positive rate there; scale the others relative to it, or give "
               "the 4 rates in reward.stand_in_false_positive_by_score.")
    if by_score and len(by_score) != 4:
        yield (f"reward.stand_in_false_positive_by_score = {by_score} has {len(by_score)} entries; give 4 probabilities "
               "(closeness 1, 2, 3, 4) or none, to use reward.stand_in_near_miss_rate * reward.stand_in_false_positive_shape.")
    if r.stand_in_audit_backend and not r.stand_in_from_audit:
        yield (f"reward.stand_in_audit_backend = {r.stand_in_audit_backend!r} picks a backend of an audit, but "
               "reward.stand_in_from_audit names none; set it to the audit.json, or leave the backend empty.")


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
    if cfg.actors.num > 1 and cfg.learner.mode != "ray":
        yield (f"actors.num = {cfg.actors.num} needs learner.mode=ray (one learner that every actor feeds); set it, "
               "or actors.num=1.")
    if cfg.actors.num > 1 and cfg.robot.kind != "sim":
        yield (f"actors.num = {cfg.actors.num} runs simulated actors beside a simulated robot, but robot.kind = {cfg.robot.kind!r}; "
               "set actors.num=1 with a real robot.")
    p, a = cfg.policy, cfg.agent
    yield from _observation_problems(cfg)
    yield from _stand_in_problems(cfg.reward)
    yield from _verify_problems(cfg)
    if p.inference_steps > p.train_diffusion_steps:
        yield (f"policy.inference_steps = {p.inference_steps} is out of range; it must be in "
               f"[1, policy.train_diffusion_steps = {p.train_diffusion_steps}].")
    if a.backup_subset > a.num_critics:
        yield f"agent.backup_subset = {a.backup_subset} is out of range; it must be in [0, agent.num_critics = {a.num_critics}]."


def _verify_problems(cfg: Config) -> Iterator[str]:
    """reward.verify: a human confirms a non-human backend's success labels, which training must use as they are."""
    r = cfg.reward
    if r.verify == "none":
        if r.verify_failure_fraction > 0:
            yield (f"reward.verify_failure_fraction = {r.verify_failure_fraction} asks a human about claimed failures, which "
                   "happens only with reward.verify=human (or sim_human in simulation); set one, or leave the fraction at 0.")
        if r.verify_clearance > 0:
            yield (f"reward.verify_clearance = {r.verify_clearance} plans which claimed successes a human checks, which "
                   "happens only with reward.verify=human (or sim_human in simulation); set one, or leave it at 0.")
        return
    humans = ("human", "sim_human")
    if r.backend in humans:
        yield (f"reward.verify = {r.verify!r} asks a human to confirm a reward model's successes, but reward.backend = "
               f"{r.backend!r} is a human already; set reward.verify=none or choose a model backend.")
    if r.form == "dense":
        yield (f"reward.verify = {r.verify!r} confirms success labels, but reward.form = 'dense' trains on the backend's "
               "progress instead; use reward.form=sparse or step_penalty, or reward.verify=none.")
    if any(name in humans for name in r.shadow):
        yield (f"reward.verify = {r.verify!r} records the verifier's answers as the human labels, so reward.shadow = "
               f"{list(r.shadow)} cannot hold a human backend too; drop it from reward.shadow.")
    if r.verify == "sim_human" and cfg.robot.kind != "sim":
        yield (f"reward.verify = 'sim_human' answers from the simulator's truth, but robot.kind = {cfg.robot.kind!r}; "
               "use reward.verify=human on a robot.")


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
