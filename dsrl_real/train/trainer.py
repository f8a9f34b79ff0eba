"""DSRL fine-tuning: warm start with the base policy, then collect -> update, with evaluation,
checkpoints and exact resume.

One agent decision is one *chunk step* (episode.py). During the episode the reward side (rewards/scoring.py) scores prefixes on
its own worker thread and may end the episode on detected success, a stage out of steps or a
human's key; the loop never waits for a model. The finished episode's whole-episode score runs on
that worker while the scene is reset; meanwhile the learner (learner.py) waits for it, puts the
episode in the buffer (rewards shaped by reward.form), then runs its gradient steps (JAX releases
the GIL). The next episode starts only when they are done, so with simulator truth (scored inline) the run is
a deterministic function of its seed.

The run folder (train.out_dir) has one writer: the trainer holds its lock (runlock.py) while it
runs or evaluates, recording on or off, and a fresh run refuses a folder holding an earlier run's
files. Checkpoints (checkpoints.py) are verified when resumed, falling back to the previous one. An
episode's metrics record is written once the checkpoint holding it is safe, and that checkpoint
carries the record, so a crash or a full disk anywhere neither loses nor repeats it.

With learner.mode=ray the learner is a Ray actor that holds the agent's training state and the replay
buffer (remote_learner.py, reached through learner_link.py): the cycle sends the scored episode
(acknowledged once stored) and waits for newer parameters only when the acting ones would trail the
episodes sent by more than learner.max_policy_lag versions; they are swapped in at the next episode
boundary. Lag 0 is lockstep and gives inline mode's run. The checkpoint is written beside the next
episode (background_checkpoint.py), with the counters of the moment it was asked for; its episodes'
metrics records are logged once it is safe. In either mode the episode records carry the
robot's wait for the cycle after its reset, its share of the time from the cycle's start to the episode's
end, the policy lag (versions; 0 inline) and the learner's gradient steps per env step (analysis/robot_idle.py).
The robot never blocks on the learner: when it goes away, the robot goes on or holds in its start pose
(learner.on_loss), and the learner, once back, takes in from the recording every episode it had not
acknowledged (recovery.py).

Every episode (warm start, training, evaluation) is recorded into train.out_dir as it runs, shadow
backends (reward.shadow) label each one beside the primary backend, and train.seed_runs put earlier
recorded runs into the replay buffer first: see recording/run.py, shadows.py and seeding.py.

With reward.verify a human confirms or rejects each success the backend claims (rewards/verify.py): the
episode trains on their answer, the recording keeps the backend's label, the human's and the training label
(recording/labels.py), and the progress line and the episode records carry the running counts, the
backend's false-positive share among them (analysis/verify_summary.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..agents.dsrl import DSRLAgent
from ..analysis.metrics import MetricsLogger, plot_learning_curve
from ..analysis.robot_idle import progress_line, robot_fields
from ..analysis.verify_summary import VerifyTally, verify_line
from ..config import Config, ConfigError
from ..config.observations import observation_label
from ..data import replay_files
from ..data.replay import ReplayBuffer
from ..envs.make import build_env
from ..envs.robot_env import RobotEnv
from ..envs.safety import EmergencyStop
from ..policies import BasePolicy, load_base_policy
from ..policies.action_space import ActionSpacePolicy
from ..policies.checkpoint import CheckpointError, check_fits
from ..recording import EpisodeRecording, RunRecorder
from ..recording.labels import TRAINING_LABEL, episode_label, label_name, verified_labels
from ..recording.run import RunRecording, run_meta
from ..recording.seeding import fill_noise, own_episodes, seed_transitions
from ..recording.shadows import ShadowScorers
from ..rewards.base import RewardBackend
from ..rewards.registry import build_reward_backend
from ..rewards.scoring import RewardRuntime, ScoredEpisode
from ..rewards.verify import Verifier, training_flags
from ..rollout import EVAL_SEED, gaussian_noise, success_summary
from ..runlock import RunLock
from ..storage import write_atomic
from . import checkpoints
from .background_checkpoint import BackgroundCheckpoint
from .checkpoints import LATEST
from .episode import ChunkEpisode, episode_success, run_chunk_episode
from .features import FeatureFn
from .fleet import Fleet
from .learner import Learner
from .learner_link import LearnerLink, LearnerLost
from .recovery import LearnerRecovery
from .remote_learner import LearnerSpec
from .updates import learn, updates_due

log = logging.getLogger("dsrl_real.train.trainer")


@dataclass
class PendingEpisode:
    """The episode that just finished, its whole-episode score on the way; the learner's next cycle
    puts it in the replay buffer."""

    ep: ChunkEpisode
    scored: Any  # Future[ScoredEpisode]
    warm_start: bool
    index: int  # episodes so far, this one included
    env_steps: int  # env steps so far, this episode included
    record: int | None = None  # its index in the recording
    policy_version: int = 0  # learner.mode=ray: the learner version whose parameters acted
    robot: dict = dataclasses.field(default_factory=dict)  # analysis/robot_idle.py's robot_fields


# ---- the trainer ---------------------------------------------------------------------------------
class DSRLTrainer:
    def __init__(self, cfg: Config, env: RobotEnv | None = None, policy: BasePolicy | None = None,
                 reward_backend: RewardBackend | None = None, verifier: Verifier | None = None):
        self.cfg = cfg
        self.out_dir = Path(cfg.train.out_dir)
        self.base_eval: dict[str, Any] | None = None  # the step-0 evaluation of the base policy, once run
        self.env = env or build_env(cfg)
        # the base policy: what acts, or for the baseline what it embeds observations with (if anything)
        reads_policy = not cfg.train.action_space_baseline or cfg.train.action_space_features == "policy_embedding"
        base = (policy or load_base_policy(cfg.policy)) if reads_policy else None
        if hasattr(base, "normalization"):
            check_fits(base, self.env.observation_space, self.env.action_space, f"The policy '{cfg.policy.checkpoint}'")
        if cfg.train.action_space_baseline:
            self.policy: BasePolicy = ActionSpacePolicy(self.env.action_space.low, self.env.action_space.high, base)
            # The same compute per env step and the same target entropy per latent dimension as DSRL
            # (its latent is a chunk of actions; a target above a 7-dim box's maximum could never be met).
            chunk = max(1, cfg.policy.chunk_size)
            agent_cfg = dataclasses.replace(cfg.agent, action_magnitude=1.0, features=cfg.train.action_space_features,
                                            utd=max(1, cfg.agent.utd // chunk), target_entropy=cfg.agent.target_entropy / chunk)
        else:
            self.policy = base
            agent_cfg = cfg.agent
        self.features = FeatureFn(self.policy, self.env, agent_cfg.features, agent_cfg.encoder_image_keys)
        blank = {k: np.zeros((1, *space.shape), space.dtype) for k, space in self.env.observation_space.spaces.items()}
        feature_dim = self.features(blank).shape[-1]
        self.agent = DSRLAgent(agent_cfg, feature_dim, self.policy.noise_shape,
                               action_bounds=(self.env.action_space.low, self.env.action_space.high),
                               image_shapes={k: self.env.observation_space[k].shape for k in self.features.image_keys})
        self.buffer = ReplayBuffer(cfg.train.buffer_capacity, cfg.train.buffer_segment_slots)
        self.buffer_keys = self._buffer_keys()
        self.rewards = RewardRuntime(cfg, self.env.task, self.env.control_hz, reward_backend or build_reward_backend(cfg),
                                     cameras=[cam.name for cam in self.env.cameras], verifier=verifier)
        self.reward_backend = self.rewards.backend
        self.reward_label = label_name(self.reward_backend)  # its labels' name in the recording
        # the labels training reads back (recovery, seeding): with verify-positives the training label first
        self.trained_label = (TRAINING_LABEL, self.reward_label) if self.rewards.verify is not None else self.reward_label
        self.verify_tally = VerifyTally(self.reward_label, cfg.reward.verify_warn_false_positive_rate)
        try:
            self.shadows = ShadowScorers.from_config(cfg, self.reward_backend, build_reward_backend)
        except BaseException:
            self.rewards.close()
            raise
        self.recorder: RunRecorder | None = None  # the run folder's recorder while run() or evaluate() records
        self._recording: RunRecording | None = None
        self.learner = Learner()  # absorbs each finished episode, learns and checkpoints, beside the next reset
        self.checkpointing = BackgroundCheckpoint()  # learner.mode=ray: the checkpoint, beside the next episode
        self.link: LearnerLink | None = None  # learner.mode=ray: the learner actor, while run() runs
        self.recovery: LearnerRecovery | None = None  # learner.mode=ray: what the robot does when the learner goes away
        self.fleet: Fleet | None = None  # actors.num > 1: the simulated actors beside this robot, while run() runs
        self._pending: PendingEpisode | None = None  # finished, not yet in the replay buffer
        if self.rewards.ends_episodes:
            self.env.terminate_on_success = False  # the detector (or the human) decides, as it must on hardware
        self.sample_rng = np.random.default_rng([cfg.run.seed, 1])
        self.warm_rng = np.random.default_rng([cfg.run.seed, 2])
        self.episodes = 0
        self.env_steps = 0
        self.next_eval = cfg.train.eval_every_steps
        self.label = "sac_action_space" if cfg.train.action_space_baseline else agent_cfg.algorithm
        self.observations = observation_label(cfg, base or self.policy)  # what the run observes, in words, on its results
        self.logger: MetricsLogger | None = None
        self._run_lock: RunLock | None = None  # the run folder, while this trainer writes into it
        # metrics.jsonl records that wait for the checkpoint holding their episode (see _settle), and
        # the records of the checkpoint a resume started from (appended where the file lacks them)
        self._unlogged: list[dict] = []
        self._restored_records: list[dict] = []

    # -- noise sources -----------------------------------------------------------------------------
    def _warm_noise(self, features: np.ndarray) -> np.ndarray:
        """Base-policy rollouts: w ~ N(0, I) (for the baseline: uniform actions)."""
        if self.cfg.train.action_space_baseline:
            return self.warm_rng.uniform(-1, 1, self.policy.noise_shape).astype(np.float32)
        return self.warm_rng.standard_normal(self.policy.noise_shape).astype(np.float32)

    def _actor_noise(self, features: np.ndarray) -> np.ndarray:
        return self.agent.act(features)

    # -- learning ----------------------------------------------------------------------------------
    def _learn(self, updates: int) -> dict[str, float]:
        return learn(self.agent, self.buffer, self.sample_rng, updates, self._denoise())

    def _denoise(self):
        """What DSRL-NA's learner denoises with: the base policy's sampler (the baseline has none)."""
        return None if self.cfg.train.action_space_baseline else self.policy.sample

    def _score(self, ep: ChunkEpisode):
        """Start the whole-episode scoring (on the reward worker); a Future of the `ScoredEpisode`."""
        return self.rewards.score(ep.frames, ep.truth, ep.step_frames, ep.stage_starts)

    def _buffer_keys(self) -> set[str]:
        """The observations the learner reads back: the vectors, the agent's own encoder's cameras, and
        for DSRL-NA whatever the base policy reads (an external policy without `input_keys`: all).
        Camera frames nobody reads stay out of the buffer and its checkpoints (they are recorded)."""
        spaces = self.env.observation_space.spaces
        keys = {k for k, space in spaces.items() if space.dtype == np.float32} | set(self.features.image_keys)
        if self.agent.na:
            keys |= set(getattr(self.policy, "input_keys", spaces))
        return keys

    def _store(self, ep: ChunkEpisode, scored: ScoredEpisode) -> None:
        self.buffer.add_episode(**self.transitions(ep, scored))

    def transitions(self, ep: ChunkEpisode, scored: ScoredEpisode) -> dict[str, Any]:
        """The episode as the replay buffer takes it (`ReplayBuffer.add_episode`'s arguments); a success the
        human rejected (verify-positives) ends as a failure."""
        terminated, truncated = training_flags(ep.terminated, ep.truncated, scored.verification)
        return dict(observations={k: np.stack(v) for k, v in ep.observations.items() if k in self.buffer_keys},
                    features=np.stack(ep.features), noise=np.stack(ep.noise), chunks=np.stack(ep.chunks), rewards=scored.rewards,
                    terminated=terminated, truncated=truncated)

    def _recorded_arrays(self, ep: dict[str, Any]) -> dict[str, Any]:
        """A recorded episode (seeding.py's arrays) as the replay buffer takes it: the buffer's observations and the features."""
        observations = {k: v for k, v in ep["observations"].items() if k in self.buffer_keys}
        return dict(observations=observations, features=self.features(ep["observations"]), noise=ep["noise"],
                    chunks=ep["chunks"], rewards=ep["rewards"], terminated=ep["terminated"], truncated=ep["truncated"])

    def recorded_episodes(self, numbers: list[int]):
        """learner.mode=ray: this run's recorded training episodes numbered `numbers`, for a learner that had
        not acknowledged them (recovery.py): (number, the arrays, or None while its reward label is on the way)."""
        for number, ep in own_episodes(self.out_dir, numbers, observation_space=self.env.observation_space,
                                       noise_shape=self.policy.noise_shape, chunk_shape=(self.policy.chunk_size, self.policy.action_dim),
                                       label=self.trained_label, form=self.cfg.reward.form):
            yield number, None if ep is None else self._recorded_arrays(ep)

    def _wait_for_labels(self, timeout: float) -> bool:
        return self._recording is None or self._recording.wait_for_labels(timeout)

    def seed_buffer(self, quiet: bool = False) -> int:
        """Put the complete episodes of the recorded runs in train.seed_runs into the replay buffer
        (before the warm start); returns how many. `quiet`: no metrics record (a restarted learner's again)."""
        episodes = transitions = 0
        recorded = (ep for run_dir in self.cfg.train.seed_runs
                    for ep in seed_transitions(run_dir, observation_space=self.env.observation_space, noise_shape=self.policy.noise_shape,
                                               chunk_shape=(self.policy.chunk_size, self.policy.action_dim), label=self.trained_label,
                                               form=self.cfg.reward.form))
        fitted: dict[str, Any] = {}
        if self._fits_seed_noise:  # the fit takes every episode's steps at once; otherwise they stream in one by one
            recorded = list(recorded)
            fitted = fill_noise(recorded, self._fit_noise)
        for ep in recorded:
            arrays = self._recorded_arrays(ep)
            if self.link is None:
                self.buffer.add_episode(**arrays)
            else:  # into the learner's buffer, counted as no episode of this run
                self.link.add_episode(episodes, -1, arrays, counted=False, actor_id="seed")
            episodes += 1
            transitions += len(ep["rewards"])
        if self.cfg.train.seed_runs and self.logger is not None and not quiet:
            self.logger.log("seed", 0, runs=list(self.cfg.train.seed_runs), episodes=episodes, transitions=transitions, **fitted)
        return episodes

    @property
    def _fits_seed_noise(self) -> bool:
        """Whether seeded steps without noise get fitted noise: only DSRL-SAC's critic reads the noise taken."""
        return (self.cfg.train.seed_noise == "fit" and self.cfg.agent.algorithm == "dsrl_sac"
                and not self.cfg.train.action_space_baseline and hasattr(self.policy, "fit_noise"))

    def _fit_noise(self, observations, chunks):
        return self.policy.fit_noise(observations, chunks, self.cfg.agent.action_magnitude)

    # -- recording ---------------------------------------------------------------------------------
    def _open_recording(self) -> bool:
        """Open the run folder's recorder (train.record) unless it is open; True if this call opened it."""
        if self._recording is not None or not self.cfg.train.record:
            return False
        label = TRAINING_LABEL if self.rewards.verify is not None else self.reward_label
        meta = {**run_meta(self.cfg, label, self.label, self.shadows.names, self.policy.chunk_size),
                "observations": self.observations}
        self._recording = RunRecording(self.out_dir, [cam.name for cam in self.env.cameras], self.env.control_hz, meta,
                                       run_lock=self._run_lock)
        self.recorder = self._recording.recorder
        return True

    def _close_recording(self) -> None:
        """Write the labels still being computed (waits for them), then release the run folder."""
        try:
            if self._recording is not None:
                self._recording.close()
        finally:
            self._recording = self.recorder = None

    def _recorded(self, kind: str, seed: int | None):
        """A `with` block recording one episode (an EpisodeRecording, or None when not recording);
        an exception inside seals what was recorded as partial."""
        if self._recording is None:
            return contextlib.nullcontext()
        return self._recording.episode(kind, seed, self.env.task.instruction)

    def _seal(self, recording: EpisodeRecording | None, ep: ChunkEpisode, **extra: Any) -> int | None:
        """Seal a recorded episode with its outcome the moment it ends; its labels follow."""
        if recording is None:
            return None
        return self._recording.finish(recording, ep.success, ep.terminated, ep.truncated, end_reason=ep.end_reason,
                                      detected_success=ep.detected_success, reward_wait_s=round(ep.reward_wait_s, 4),
                                      safety_counts=ep.safety_counts, **extra)

    def _ask_labels(self, index: int | None, ep: ChunkEpisode, scored=None) -> None:
        """Labels of a sealed episode, written as they arrive: the primary backend's score (`scored`,
        for the episodes it rewards) and every shadow backend's."""
        if index is None:
            return
        if scored is not None and self.rewards.verify is not None:  # the backend's label, the human's and the training label
            self._recording.labels_when_done(index, self.reward_label, scored,
                                             lambda s: verified_labels(s, self.reward_label, ep.terminated, ep.truncated))
        elif scored is not None:
            self._recording.label_when_done(index, self.reward_label, scored, episode_label)
        for name, future in self.shadows.submit(ep.frames, ep.truth, self.env.task.instruction, self.env.control_hz).items():
            self._recording.label_when_done(index, name, future)

    # -- a simulated actor of actors.num (fleet.py) --------------------------------------------------
    @contextlib.contextmanager
    def collecting(self):
        """Hold and record the run folder for `act_once` calls."""
        with self._writing("a simulated actor's episodes"):
            opened = self._open_recording()
            try:
                yield
            finally:
                if opened:
                    self._close_recording()

    def act_once(self, seq: int) -> tuple[ChunkEpisode, ScoredEpisode]:
        """One episode with the acting agent (its noise stream; no warm start), recorded as training episode
        `seq` on the scene of seed run.seed + seq - 1, and its whole-episode score."""
        obs, info = self.env.reset(seed=self.cfg.run.seed + seq - 1)
        with self._recorded("train", self.cfg.run.seed + seq - 1) as recording:
            ep = run_chunk_episode(self.env, self.policy, self.features, self._actor_noise, obs, info, self.rewards.monitor, recording)
            index = self._seal(recording, ep, train_episode=seq)
        scored = self._score(ep)
        self._ask_labels(index, ep, scored)
        return ep, scored.result()

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, episodes: int, seed: int = EVAL_SEED, base: bool = False) -> dict[str, Any]:
        """The actor's mean noise (deterministic) on fixed evaluation scenes; each trial recorded as kind eval.
        `base`: the base policy itself, w ~ N(0, I) from one stream seeded with `seed`, drawn as
        policies.pipeline.base_success (the benchmarks' base success) draws it, so the two agree."""
        with self._writing("an evaluation"):
            return self._evaluate(episodes, seed, base)

    def _evaluate(self, episodes: int, seed: int, base: bool = False) -> dict[str, Any]:
        opened = self._open_recording()
        draw = gaussian_noise(self.policy.noise_shape, seed=seed) if base else None
        try:
            successes = 0
            for i in range(episodes):
                obs, info = self.env.reset(seed=seed + i)
                if draw is not None:
                    noise = draw  # it ignores what it is given: the agent's input here, the observation there
                else:
                    noise = lambda f: self.agent.act(f, deterministic=True, rng=0)  # noqa: E731 - leaves the agent's stream alone
                with self._recorded("eval", seed + i) as recording:
                    ep = run_chunk_episode(self.env, self.policy, self.features, noise, obs, info, self.rewards.monitor, recording)
                    index = self._seal(recording, ep, train_env_steps=self.env_steps)
                self._ask_labels(index, ep)
                successes += ep.success
            return success_summary(successes, episodes)
        finally:
            if opened:
                self._close_recording()

    # -- the run folder ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self, purpose: str):
        """Hold the run folder (one writer per folder, runlock.py) unless this trainer already does."""
        if self._run_lock is not None:
            yield
            return
        self._run_lock = RunLock.acquire(self.out_dir, purpose, "choose another train.out_dir", ConfigError)
        try:
            yield
        finally:
            lock, self._run_lock = self._run_lock, None
            lock.release()

    def _refuse_earlier_run(self) -> None:
        """A fresh run never writes into a folder holding an earlier run's files."""
        found = checkpoints.earlier_run_files(self.out_dir)
        if not found:
            return
        if checkpoints.listed(self.out_dir):
            raise ConfigError(f"'{self.out_dir}' already holds a run; pass --resume to continue it or choose another train.out_dir.")
        raise ConfigError(f"'{self.out_dir}' already holds an earlier run's files ({', '.join(found)}) and no checkpoint "
                          "to continue from; choose another train.out_dir.")

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """A checkpoint now (e.g. after a stop): see `checkpoints.save`. Records waiting for it are logged."""
        with self._writing("a checkpoint save"):
            safe = self._finish_checkpoint()  # the one beside the last episode (learner.mode=ray) comes first
            records = self._unlogged
            folder = self._save_checkpoint(records)
            self._unlogged = []
            if self.logger is not None:
                for record in safe + records:
                    self.logger.write(record)
            return folder

    def _save_checkpoint(self, records: list[dict]) -> Path:
        """agent + buffer + counters + random streams, and the metrics records this checkpoint makes
        safe (a resume appends those the metrics file lacks), in checkpoints/episode_NNNNNN."""
        return self._checkpoint_writer(records)()

    def _checkpoint_writer(self, records: list[dict]):
        """The checkpoint of this moment, to be written now or (learner.mode=ray) beside the next episode: the
        counters, the random streams and the robot's acting stream are taken now, as the loop changes them."""
        counters = {"episodes": self.episodes, "env_steps": self.env_steps, "next_eval": self.next_eval,
                    "sample_rng": self.sample_rng.bit_generator.state, "warm_rng": self.warm_rng.bit_generator.state,
                    "records": list(records)}
        link, act_stream = self.link, self.agent.act_stream

        def write_files(folder: Path) -> None:
            if link is not None:  # the learner's files (its agent with this side's acting stream, its buffer), as bytes
                counters["sample_rng"] = link.write_checkpoint(folder, act_stream)
            else:
                self.agent.save(folder / "agent.msgpack")
                earlier = checkpoints.Earlier(folder)  # its full replay segments, unchanged since, are linked
                replay_files.save(self.buffer, folder / checkpoints.REPLAY, reuse=lambda name: earlier.link(f"{checkpoints.REPLAY}/{name}", folder))
            write_atomic(folder / "counters.json", json.dumps(counters).encode())

        def write() -> Path:
            episodes = counters["episodes"]
            try:
                return checkpoints.save(self.out_dir, episodes, write_files)
            except OSError as err:  # a full disk (ENOSPC, EFBIG), a read-only or vanished folder
                raise CheckpointError(f"Writing the checkpoint of episode {episodes} into '{self.out_dir / 'checkpoints'}' "
                                      f"failed ({err.strerror or err}); the earlier checkpoints are intact: free the space, then "
                                      "run again with --resume to continue from the last one.") from err

        return write

    def _finish_checkpoint(self) -> list[dict]:
        """Finish the checkpoint started beside the last episode (learner.mode=ray), if any: the records it made
        safe. A learner lost while writing it is handled as in a cycle (recovery.lost) and its records wait for
        the next checkpoint; any other failure is raised."""
        done = self.checkpointing.finish()
        if done is None:
            return []
        if done.error is None:
            return done.records
        self._unlogged = done.records + self._unlogged
        if isinstance(done.error, LearnerLost) and self.recovery is not None:
            self.recovery.lost(done.error, self.episodes)
            return []
        raise done.error

    def restore(self) -> bool:
        """Load the newest usable checkpoint; False when the folder has none. A corrupt checkpoint
        (its manifest names the file) is skipped for the one before it, with a log line."""
        folders = checkpoints.listed(self.out_dir)
        if not folders:
            if (self.out_dir / LATEST).exists():
                raise CheckpointError(f"'{self.out_dir / LATEST}' exists but '{self.out_dir / 'checkpoints'}' holds no "
                                      "checkpoint; choose another train.out_dir to start a new run (this folder stays as it is).")
            return False
        problems = []
        for folder in folders:
            problem = checkpoints.problem(folder) or self._load_checkpoint(folder)
            if problem is None:
                break
            problems.append(problem)
        else:
            raise CheckpointError(f"No checkpoint in '{self.out_dir / 'checkpoints'}' can be resumed ({'; '.join(problems)}); "
                                  "restore the files from a backup, or choose another train.out_dir to start a new run "
                                  "(this folder stays as it is).")
        if problems:
            log.warning(f"Resuming from the checkpoint {folder} instead ({'; '.join(problems)}); the episodes after "
                        f"episode {self.episodes} run again.")
        note = checkpoints.pointer_note(self.out_dir, folder)
        if note:
            log.warning(note)
        return True

    def _load_checkpoint(self, folder: Path) -> str | None:
        """Load one checkpoint folder; None, or what is wrong with it (one clause naming the file)."""
        name = "counters.json"
        try:
            counters = json.loads((folder / name).read_text())
            keys = ("episodes", "env_steps", "next_eval", "sample_rng", "warm_rng")
            missing = [k for k in keys if k not in counters]
            if missing:
                raise ValueError(f"it lacks {', '.join(missing)}")
            name = "agent.msgpack"
            self.agent.load(folder / name)
            name = checkpoints.replay_name(folder)
            if self.link is not None:  # the learner loads its state and buffer
                problem = self.link.load_checkpoint(folder, counters["episodes"], counters["sample_rng"])
                if problem:
                    return problem
            else:
                self.buffer.take(replay_files.load(folder / name))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            detail = str(err).split(";")[0].rstrip(".")
            return f"{folder.name}/{name} cannot be loaded ({type(err).__name__}: {detail})"
        self.episodes, self.env_steps, self.next_eval = counters["episodes"], counters["env_steps"], counters["next_eval"]
        self.sample_rng.bit_generator.state = counters["sample_rng"]
        self.warm_rng.bit_generator.state = counters["warm_rng"]
        self._restored_records = list(counters.get("records", []))
        self._unlogged = []
        return None

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, resume: bool = False, progress=None) -> dict[str, Any]:
        with self._writing("a training run"), self._learner_actor():
            if resume:
                if not self.restore():
                    if checkpoints.earlier_run_files(self.out_dir):
                        self._refuse_earlier_run()
                    raise ConfigError(f"Nothing to resume in '{self.out_dir}'; run without --resume to start.")
            else:
                self._refuse_earlier_run()
            self._open_recording()  # also seals an episode a crash left in progress, as partial
            try:
                return self._run(resume, progress)
            finally:
                self._close_recording()

    def _run(self, resume: bool, progress) -> dict[str, Any]:
        cfg = self.cfg.train
        self.logger = MetricsLogger(self.out_dir, cfg.wandb, config=dataclasses.asdict(self.cfg))
        if resume:
            self.logger.ensure_logged(self._restored_records)
            recorded = [r["verification"] for r in self.logger.records("episode") if "verification" in r]
            self.verify_tally = VerifyTally(self.reward_label, self.cfg.reward.verify_warn_false_positive_rate, recorded)
            if self.rewards.verify is not None:
                self.rewards.verify.resume(recorded)  # where its sampling plan stood
        task = progress.add_task(f"{self.label}", total=cfg.env_steps, completed=self.env_steps) if progress else None
        self._pending = None  # (re)started: nothing waits for the buffer
        try:
            if self.episodes == 0 and self.env_steps == 0 and not resume:
                self.seed_buffer()
                # The curve starts at what fine-tuning starts from: the base policy with w ~ N(0, I) (the
                # untrained actor's mean noise is no policy anyone ran). The action-space baseline has no base
                # policy: its curve starts at its untrained actor.
                self._log_eval(base=not self.cfg.train.action_space_baseline)
            while self.env_steps < cfg.env_steps:
                boundary = time.monotonic()
                self.learner.submit(self._learn_cycle)  # waits for the last episode's score, stores it and learns, while the scene resets
                try:
                    obs, info = self.env.reset(seed=self.cfg.run.seed + self.episodes)
                finally:  # even when the reset fails (an emergency stop), the learner finishes first
                    reset_done = time.monotonic()
                    self.learner.join()
                    cycle = self.learner.result()
                    if cycle.error is None:
                        self._settle(cycle.value)
                if cycle.error is not None:
                    raise cycle.error
                if self.fleet is not None:
                    self.fleet.check()
                if self.recovery is not None and self.recovery.away and self.cfg.learner.on_loss == "pause":
                    self._pause_for_learner()
                waited = time.monotonic() - reset_done  # the robot, reset, stood waiting for the learner's cycle
                version = self.link.swap(self.agent) if self.link is not None else 0  # ray: the newest parameters, at this boundary
                warm = self.episodes < cfg.warm_start_episodes
                with self._recorded("warm_start" if warm else "train", self.cfg.run.seed + self.episodes) as recording:
                    ep = run_chunk_episode(self.env, self.policy, self.features, self._warm_noise if warm else self._actor_noise,
                                           obs, info, self.rewards.monitor, recording)
                    index = self._seal(recording, ep, train_episode=self.episodes + 1,
                                       train_env_steps=self.env_steps + ep.env_steps)
                scored = self._score(ep)  # a human answers its prompt here; a Ctrl-C meanwhile leaves the counters as they were
                self.episodes += 1
                self.env_steps += ep.env_steps
                self._pending = PendingEpisode(ep, scored, warm, self.episodes, self.env_steps, record=index, policy_version=version)
                # the learner versions the acting parameters trailed the episodes it held (every actor's); inline mode is lockstep
                lag = max(self.link.stored, self.episodes - 1) - version if self.link is not None else 0
                self._pending.robot = robot_fields(waited, time.monotonic() - boundary, lag)
                self._ask_labels(index, ep, scored)
                if cfg.video_every_episodes and self.episodes % cfg.video_every_episodes == 0 and ep.frames:
                    name = next(iter(ep.frames))
                    self.logger.video(f"train_{name}", self.env_steps, np.stack(ep.frames[name]), self.env.control_hz)
                if self.env_steps >= self.next_eval:
                    self.next_eval += cfg.eval_every_steps
                    if self.env_steps < cfg.env_steps:  # at the budget's end the final evaluation follows at once
                        self._log_eval()
                if progress:
                    line = progress_line(self.label, {**self._pending.robot, **(self.link.throughput if self.link else {})},
                                         ray=self.link is not None)
                    if self.rewards.verify is not None:  # past the threshold the line warns; the log has the sentence
                        line = f"{line} · {verify_line(self.verify_tally.summary)}"
                    progress.update(task, completed=min(self.env_steps, cfg.env_steps), description=line)
            if self.fleet is not None:  # the budget is this robot's: the simulated actors end with it
                self.fleet.stop()
            self._finish_episodes(max_lag=0, wait_s=self.cfg.learner.wait_s)
            if self.recovery is not None and self.recovery.away:  # gone again at the very end: one more wait, then a checkpoint
                self._finish_episodes(max_lag=0, wait_s=self.cfg.learner.wait_s)
                if self.recovery.away:
                    raise self.recovery.gone()
            if self.link is not None:
                self.link.sync(self.agent)  # the learner's whole state: the final evaluation and the result are the trained agent's
                self.logger.log("learner", self.env_steps, **self.link.stats())  # its totals, each actor's among them
            final = self.evaluate(cfg.final_trials)
            self.logger.log("final_eval", self.env_steps, label=self.label, env_steps=self.env_steps, observations=self.observations,
                            **final)
            self._plot()
            result = {"label": self.label, "observations": self.observations, "env_steps": self.env_steps, "episodes": self.episodes,
                      "final_success_rate": final["success_rate"], "final_ci95": final["ci95"]}
            if self.base_eval is not None:  # this run's step-0 evaluation of the base policy
                result.update(base_success_rate=self.base_eval["success_rate"], base_ci95=self.base_eval["ci95"],
                              base_episodes=self.base_eval["episodes"])
            return result
        except (EmergencyStop, KeyboardInterrupt):
            self._hold_arm()  # first: what follows (the learner's cycle, a checkpoint) may take a while
            self.learner.join()  # a Ctrl-C may have cut the join above short
            self._finish_episodes()  # everything finished before the stop is kept, once
            raise
        finally:
            self.learner.stop()
            self._finish_checkpoint_at_exit()
            self.logger.close()

    def _hold_arm(self) -> None:
        """After a stop: the arm holds where it is (a failure to stop it is logged; the rest still runs)."""
        try:
            self.env.hold()
        except Exception as err:  # noqa: BLE001 - the checkpoint and the close still follow
            log.error(f"Stopping the arm failed ({err}); the run's state is saved next, then the robot is closed.")

    def _finish_checkpoint_at_exit(self) -> None:
        """However the run ends, the checkpoint still being written finishes first and the records it made
        safe are logged; a failure of it is only logged: the error that ended the run is the one to show."""
        try:
            for record in self._finish_checkpoint():
                self.logger.write(record)
        except Exception as err:  # noqa: BLE001 - the earlier checkpoints are intact; a resume starts from them
            log.warning(f"The checkpoint being written when the run ended failed ({err}); the earlier checkpoints are intact.")
        finally:
            self.checkpointing.stop()

    def _finish_episodes(self, max_lag: int | None = None, wait_s: float = 0.0) -> None:
        """Absorb the last episode (unless the learner already did), do its gradient work and write a
        checkpoint (end of a run, or a stop). learner.mode=ray: the gradient work is waited for only
        within `max_lag` versions (default learner.max_policy_lag); the checkpoint keeps what is owed.
        A learner that is away is waited for up to `wait_s` (none after a stop)."""
        self._settle(self._learn_cycle(force=True, max_lag=max_lag, wait_s=wait_s))

    def _pause_for_learner(self) -> None:
        """learner.on_loss=pause: hold in the start pose until the learner is back, at most learner.wait_s."""
        self.env.hold()
        if not self.recovery.take_back(self.episodes, self.cfg.learner.wait_s):
            raise self.recovery.gone()
        self.env.resume()

    def _learn_cycle(self, force: bool = False, max_lag: int | None = None, wait_s: float = 0.0) -> dict[str, Any]:
        """The learner's part of a cycle: the pending episode enters the buffer once its score is in,
        then its gradient steps run, then the checkpoint, which also holds the waiting metrics records
        and the episode's (["record"]; ["safe"]: the records now safe to log, ["held"]: this cycle's
        checkpoint holds the waiting ones and the episode's). Runs beside the scene reset.
        learner.mode=ray: the episode goes to the learner actor instead (see _absorb_remote), and the
        checkpoint (unless `force`d: the run's end, a stop) is only started, to be written beside the next
        episode; the next cycle finishes it first. While the learner is away no checkpoint is written and
        the records wait for the next one."""
        out: dict[str, Any] = {"safe": self._finish_checkpoint()}
        finished = self._pending
        if self.recovery is not None and self.recovery.away:  # take it back if it can be, with the episodes before this one
            self.recovery.take_back(finished.index - 1 if finished is not None else self.episodes, wait_s)
        if finished is not None:
            cfg = self.cfg.train
            scored = finished.scored.result()
            if self.link is not None:
                metrics = self._absorb_remote(finished, scored, max_lag)
            else:
                self._store(finished.ep, scored)
                self._pending = None
                n = finished.index
                updates = updates_due(n, cfg.warm_start_episodes, len(self.buffer), len(finished.ep.chunks), cfg.updates_per_chunk)
                steps = self.agent.step
                metrics = self._learn(updates) if updates else {}
                metrics.update(finished.robot, gradient_steps_per_env_step=(self.agent.step - steps) / max(1, finished.ep.env_steps))
            out["record"] = self._episode_record(finished, scored, metrics)
        every = self.cfg.train.checkpoint_every_episodes
        if self.episodes and (force or (every and self.episodes % every == 0)):
            if self.recovery is not None and self.recovery.away:
                return out  # the learner holds the training state: the records wait for the next checkpoint
            records = self._unlogged + ([out["record"]] if "record" in out else [])
            if self.link is not None and not force:  # the robot waits only for the absorb above
                self.checkpointing.start(self._checkpoint_writer(records), records)
                self._unlogged = []  # the checkpoint holds them now (the loop, resetting the scene, leaves them alone)
                out.pop("record", None)
                return out
            try:
                self._save_checkpoint(records)
            except LearnerLost as err:
                self.recovery.lost(err, self.episodes)
                return out
            out["safe"] += records
            out["held"] = True
        return out

    def _absorb_remote(self, finished: PendingEpisode, scored: ScoredEpisode, max_lag: int | None) -> dict:
        """learner.mode=ray: send the episode to the learner (acknowledged once stored, never waiting for
        its gradient steps beyond learner.max_policy_lag); the record's learner metrics and the robot's.
        While the learner is away the episode is left to the recording (recovery.py)."""
        lag = self.cfg.learner.max_policy_lag if max_lag is None else max_lag
        metrics: dict[str, Any] = {}
        if not self.recovery.away:
            try:
                metrics = self.link.absorb(finished.index, finished.policy_version, self.transitions(finished.ep, scored),
                                           finished.ep.env_steps, lag, success=episode_success(finished.ep, scored))
            except LearnerLost as err:
                self.recovery.lost(err, finished.index)
        self._pending = None
        return {**metrics, **finished.robot}

    def learner_spec(self) -> LearnerSpec:
        """What the learner actor of learner.mode=ray is built from (its fingerprint is checked on connecting)."""
        t = self.cfg.train
        return LearnerSpec(run_id=str(self.out_dir.resolve()), agent=self.agent.cfg, obs_dim=self.agent.obs_dim,
                           noise_shape=self.agent.noise_shape, seed=self.cfg.run.seed, buffer_capacity=t.buffer_capacity,
                           warm_start_episodes=t.warm_start_episodes, updates_per_chunk=t.updates_per_chunk,
                           buffer_segment_slots=t.buffer_segment_slots,
                           action_bounds=self.agent.action_bounds, image_shapes=dict(self.agent.image_shapes))

    @contextlib.contextmanager
    def _learner_actor(self):
        """learner.mode=ray: the learner actor, started or reached (its config checked), for the `with`
        block; closed after it, with Ray if this side started it. Inline mode: nothing."""
        if self.cfg.learner.mode != "ray" or self.link is not None:
            yield
            return
        self.link = LearnerLink(self.cfg.learner, self.learner_spec(), self._denoise() if self.agent.na else None)
        self.recovery = LearnerRecovery(self.cfg.learner, self.link, self.out_dir,
                                        self.recorded_episodes if self.cfg.train.record else None,
                                        lambda: self.seed_buffer(quiet=True), self._wait_for_labels)
        try:
            self.fleet = Fleet(type(self), self.cfg, self.learner_spec())
            yield
        finally:
            fleet, link, self.fleet, self.link, self.recovery = self.fleet, self.link, None, None, None
            try:
                if fleet is not None:
                    fleet.stop()
            finally:
                link.close()

    def _episode_record(self, finished: PendingEpisode, scored: ScoredEpisode, metrics: dict) -> dict:
        ep = finished.ep
        record = {} if finished.record is None else {"record": finished.record}
        if scored.verification is not None:
            record.update(verification=scored.verification.fields(), verify_summary=self._count_verification(scored))
        return MetricsLogger.record("episode", finished.env_steps, episode=finished.index, reward=scored.score.reward,
                                    episode_return=float(np.sum(scored.rewards)),
                                    success=episode_success(ep, scored),
                                    length=ep.env_steps, warm_start=finished.warm_start, end=ep.end_reason,
                                    detected_success=ep.detected_success, stage=len(ep.stage_starts) - 1,
                                    reward_wait_s=round(ep.reward_wait_s, 4), **record, **metrics)

    def _count_verification(self, scored: ScoredEpisode) -> dict:
        """Add the episode's verification to the run's counts (logging the warning whenever it starts to apply)."""
        warned = self.verify_tally.summary["warning"] is not None
        summary = self.verify_tally.add(scored.verification.fields())
        if summary["warning"] and not warned:
            log.warning(summary["warning"])
        return summary

    def _settle(self, out: dict) -> None:
        """After a learner cycle that succeeded: log the records a checkpoint made safe, and keep the
        episode's record, if no checkpoint holds it yet, until the one that will. An episode is in
        metrics.jsonl only once a checkpoint holds it, so a resume never logs it twice."""
        for record in out.get("safe", []):
            self.logger.write(record)
        if out.get("held"):  # this cycle's checkpoint holds the waiting records and the episode's
            self._unlogged = []
        elif "record" in out:
            self._log_later(out["record"])

    def _log_later(self, record: dict) -> None:
        """Log `record` with the next checkpoint (at once when checkpoints are only written at the end)."""
        if self.cfg.train.checkpoint_every_episodes:
            self._unlogged.append(record)
        else:
            self.logger.write(record)

    def close(self) -> None:
        """Write the labels still being computed and release the recording, then the reward backends
        (queued scoring finishes first), the robot and the cameras."""
        with contextlib.ExitStack() as stack:
            stack.callback(self.env.close)
            stack.callback(self.learner.stop)
            stack.callback(self.shadows.close)
            stack.callback(self.rewards.close)
            self._close_recording()

    def _log_eval(self, base: bool = False) -> None:
        """One point of the learning curve; the base policy's (step 0) on the final evaluation's scenes."""
        t = self.cfg.train
        result = self.evaluate(t.final_trials if base else t.eval_episodes, base=base)
        if base:
            result["base_policy"] = True
            self.base_eval = result
        record = MetricsLogger.record("eval", self.env_steps, label=self.label, env_steps=self.env_steps,
                                      observations=self.observations, **result)
        if self.episodes:
            self._log_later(record)  # after the checkpoint that follows it: a resume before it evaluates again
        else:
            self.logger.write(record)  # the base policy's: nothing to resume before the first checkpoint

    def _plot(self) -> None:
        records = [r for r in self.logger.records("eval") + self.logger.records("final_eval")]
        plot_learning_curve(records, self.out_dir / "learning_curve.png", title=f"{self.label} on {self.env.task.name}")


def train_once(cfg: Config, policy: BasePolicy | None = None, env: RobotEnv | None = None,
               reward_backend: RewardBackend | None = None) -> dict[str, Any]:
    """One training run from scratch (DSRLTrainer.run), its trainer closed after it; the run's result."""
    trainer = DSRLTrainer(cfg, env=env, policy=policy, reward_backend=reward_backend)
    try:
        return trainer.run()
    finally:
        trainer.close()
