"""What the DSRL trainer writes about every episode it runs, and reads back from earlier runs.

Recording (`RunRecording`, `StepRows`): warm-start, training and evaluation episodes (and the
trials of `dsrl-real eval`) go into the run folder (train.out_dir) through `RunRecorder`, in the
LeRobot v2.1 layout, one row per env step while the episode runs: the observation's vectors, the
executed action, the environment's reward, the stage, the chunk's noise w and whole denoised chunk
on the chunk's first row, how long acting, the env step and the reward side took, safety
interventions, the human's keys, and every new prefix score (`progress.<backend>`,
`success_prob.<backend>`); camera frames go to the videos; a last row holds the final observation.

Labels arrive later than the episode: it is sealed with its outcome the moment it ends, before any
backend scores it, and each backend's label is added with `update_labels` by the thread that
finished computing it (the reward worker, or the caller when the score was inline). So the control
loop never waits for a label, and a crash or Ctrl-C while an episode is being scored loses no step
of it, only the labels not yet computed. The label of the primary backend (reward.backend) is the
score the trainer rewarded; the human oracle's, keyboard or simulated, is always named "human",
which `dsrl-real audit` compares the others against. Evaluation episodes carry their outcome and
the shadow backends' labels only: the primary backend scores just the episodes it rewards.

Shadow mode (`ShadowScorers`, reward.shadow): more backends label every finished episode, each on
its own worker thread, without touching rewards or episode ends. A failing one is recorded as an
invalid label with its error and logged, once per distinct error; the run goes on.

Seeding (`seed_transitions`, train.seed_runs): the complete episodes of earlier recorded runs as
replay-buffer episodes, regrouped into chunk steps with their recorded noise (none: the
transitions are masked for SAC, usable by DSRL-NA) and rewards re-shaped by reward.form from the
recorded label of the current primary backend, or, without one, the recorded per-step rewards.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..envs.robot_env import RobotEnv, image_key
from ..rewards.base import EpisodeClip, EpisodeScore, RewardBackend
from ..rewards.registry import BACKENDS
from ..rewards.scoring import HUMAN_BACKENDS, BackgroundScorer, EpisodeMonitor, ScoredEpisode
from ..rewards.shaping import progress_deltas, shape_rewards
from ..runlock import RunLock
from . import EpisodeRecording, RecordedRun, RecordingError, RunRecorder, score_label, shadow_labels
from .loop import step_columns

log = logging.getLogger("dsrl_real.train.trainer")
HUMAN_LABEL = "human"


def label_name(backend: RewardBackend) -> str:
    """The key of a backend's label in the recording: "human" for the human oracle (keyboard or simulated)."""
    return HUMAN_LABEL if backend.name in HUMAN_BACKENDS else backend.name


def episode_label(scored: ScoredEpisode) -> dict[str, Any]:
    """The primary backend's label of an episode; with dense rewards also its progress per frame,
    so that a later run can re-shape the episode's rewards (train.seed_runs)."""
    label = score_label(scored.score)
    if scored.progress is not None:
        label["progress"] = [float(p) for p in scored.progress]
    return label


def invalid_label(err: BaseException) -> dict[str, Any]:
    return {"score": None, "success": None, "reward": None, "valid": False, "error": f"{type(err).__name__}: {err}"}


def run_meta(cfg: Config, label: str, algorithm: str, shadows: Sequence[str], chunk_size: int) -> dict[str, Any]:
    """meta/run.json's caller part: what produced the episodes."""
    return {"robot_type": "franka" if cfg.robot.kind == "franka" else cfg.robot.robot_model, "robot_kind": cfg.robot.kind,
            "task": cfg.task.name, "reward_backend": cfg.reward.backend, "reward_label": label, "reward_form": cfg.reward.form,
            "shadow": list(shadows), "algorithm": algorithm, "chunk_size": chunk_size, "seed": cfg.run.seed}


# ---- rows ----------------------------------------------------------------------------------------
class StepRows:
    """One recorded row per env step of a chunked episode, and its camera frames."""

    def __init__(self, recording: EpisodeRecording, env: RobotEnv, monitor: EpisodeMonitor | None):
        self.recording, self.monitor = recording, monitor
        self.cameras = [cam.name for cam in env.cameras]
        self.backend = label_name(monitor.backend) if monitor is not None else ""
        self.multi_stage = monitor is not None and len(monitor.tracker.stages) > 1
        self._wait_s, self._results, self._keys = 0.0, 0, 0

    def frames(self, obs: Mapping[str, np.ndarray]) -> None:
        if self.cameras:
            self.recording.add_frames({c: obs[image_key(c)] for c in self.cameras})

    def step(self, obs: dict, info: dict, action: np.ndarray, reward: float, step_info: dict, step_time_s: float,
             **chunk_columns: Any) -> None:
        """Row t: o_t with `info` from when it was observed, the action taken and what the step gave;
        `chunk_columns` (noise, chunk, act_time_s) on a chunk's first row."""
        self.recording.add_step(**step_columns(obs, info, action=action, reward=reward, step_info=step_info,
                                               step_time_s=step_time_s, **chunk_columns, **self._reward_side()))

    def final(self, obs: dict, info: dict) -> None:
        self.recording.add_step(**step_columns(obs, info, **self._stage()))

    def _stage(self) -> dict[str, Any]:
        # On multi-stage detection the reward side's stage is the one the robot is asked about (on
        # hardware the environment has no stage of its own); otherwise the environment's.
        return {"stage": self.monitor.tracker.stage} if self.multi_stage else {}

    def _reward_side(self) -> dict[str, Any]:
        monitor = self.monitor
        if monitor is None:
            return {}
        columns: dict[str, Any] = {"reward_wait_s": monitor.wait_s - self._wait_s, **self._stage()}
        self._wait_s = monitor.wait_s
        if monitor.prefix_results != self._results:  # a prefix score came in during this step
            self._results = monitor.prefix_results
            columns["progress"] = {self.backend: monitor.last_progress}
            columns["success_prob"] = {self.backend: monitor.last_success_prob}
        if len(monitor.keys) > self._keys:
            columns["human_key"] = ",".join(monitor.keys[self._keys:])
            self._keys = len(monitor.keys)
        return columns


# ---- the run's recorder and its late labels ------------------------------------------------------
class RunRecording:
    """The trainer's `RunRecorder`, with labels written when they arrive, from any thread; `run_lock`:
    the trainer's hold on the run folder, which the recorder shares (one writer per folder)."""

    def __init__(self, run_dir: str | Path, cameras: list[str], fps: float, meta: dict, run_lock: RunLock | None = None):
        try:
            self.recorder = RunRecorder(run_dir, cameras, fps, meta, run_lock=run_lock)
        except RecordingError as err:
            raise ConfigError(str(err)) from err
        self._lock = threading.Lock()  # the recorder's episode list changes in one thread at a time
        self._pending = threading.Condition()
        self._outstanding = 0

    @contextlib.contextmanager
    def episode(self, kind: str, seed: int | None, instruction: str) -> Iterator[EpisodeRecording]:
        """An episode being recorded; an exception (Ctrl-C included) seals what was recorded as partial."""
        with self._lock:
            recording = self.recorder.begin_episode(kind, seed, instruction)
        reason = "left unfinished"
        try:
            yield recording
        except BaseException as err:
            reason = type(err).__name__
            raise
        finally:
            with self._lock:
                recording.abort(reason)  # no-op once finished

    def finish(self, recording: EpisodeRecording, success: bool, terminated: bool, truncated: bool, **extra: Any) -> int:
        """Seal the episode with its outcome (labels come later); returns its episode index."""
        with self._lock:
            return recording.finish(success, terminated, truncated, labels={}, **extra)["episode_index"]

    def label_when_done(self, index: int, name: str, future: Future,
                        to_label: Callable[[Any], dict] = lambda label: label) -> None:
        """Add `name`'s label to sealed episode `index` once `future` completes (at once if it has);
        a score that failed is recorded as an invalid label with its error."""
        with self._pending:
            self._outstanding += 1

        def write(done: Future) -> None:
            try:
                try:
                    label = to_label(done.result())
                except BaseException as err:  # noqa: BLE001 - the trainer raises it; the record keeps it
                    label = invalid_label(err)
                with self._lock:
                    self.recorder.update_labels(index, {name: label})
            except Exception as err:  # noqa: BLE001 - a scoring worker must survive a failed write
                log.error(f"Could not write the {name} label of recorded episode {index} into {self.recorder.run_dir} ({err}).")
            finally:
                with self._pending:
                    self._outstanding -= 1
                    self._pending.notify_all()

        future.add_done_callback(write)

    def wait_for_labels(self, timeout: float | None = None) -> bool:
        """Wait until every label asked for has been written; False on timeout."""
        with self._pending:
            return self._pending.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self) -> None:
        """Write the labels still being computed, then release the run folder."""
        try:
            self.wait_for_labels()
        finally:
            with self._lock:
                self.recorder.close()


# ---- shadow mode ---------------------------------------------------------------------------------
class ShadowScorers:
    """Backends that label every finished episode next to the primary one, each on its own worker
    thread; they never touch rewards or episode ends."""

    def __init__(self, backends: Sequence[RewardBackend]):
        self.backends = list(backends)
        self._scorers = [BackgroundScorer(b) for b in self.backends]
        self._logged: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg: Config, primary: RewardBackend, build: Callable[..., RewardBackend]) -> ShadowScorers:
        names = list(cfg.reward.shadow)
        unknown = [n for n in names if n not in BACKENDS]
        if unknown:
            raise ConfigError(f"Unknown reward.shadow backend(s) {', '.join(unknown)}; choose from: {', '.join(BACKENDS)}.")
        if names and not cfg.train.record:
            raise ConfigError("reward.shadow labels go into the recording; set train.record=true or leave reward.shadow empty.")
        backends: list[RewardBackend] = []
        try:
            for name in names:
                backends.append(build(cfg, name=name))
            labels = [label_name(primary)] + [label_name(b) for b in backends]
            twice = sorted({n for n in labels if labels.count(n) > 1})
            if twice:
                raise ConfigError(f"reward.shadow would label every episode twice as {', '.join(twice)}; name each backend "
                                  f"once, and not both as reward.backend ({cfg.reward.backend}) and as a shadow.")
        except BaseException:
            cls(backends).close()
            raise
        return cls(backends)

    @property
    def names(self) -> list[str]:
        return [label_name(b) for b in self.backends]

    def submit(self, frames: Mapping[str, list], truth: Sequence, instruction: str, fps: float) -> dict[str, Future]:
        """Start every shadow backend's label of one finished episode; each future gives a label dict."""
        return {label_name(b): scorer.submit(self._label, b, frames, truth, instruction, fps)
                for b, scorer in zip(self.backends, self._scorers)}

    def _label(self, backend: RewardBackend, frames: Mapping[str, list], truth: Sequence, instruction: str,
               fps: float) -> dict[str, Any]:
        clip = EpisodeClip(frames={c: np.stack(f) for c, f in frames.items()}, instruction=instruction, fps=fps,
                           truth=tuple(truth))
        label = shadow_labels([backend], clip)[backend.name]
        error = label.get("error")
        if error and self._logged.get(backend.name) != error:
            self._logged[backend.name] = error
            log.warning(f"Shadow backend {backend.name} failed ({error}); its labels are recorded as invalid and the run goes on.")
        return label

    def close(self) -> None:
        """Finish the queued labels, then release the backends."""
        for scorer in self._scorers:
            scorer.close()
        for backend in self.backends:
            if hasattr(backend, "close"):
                backend.close()


# ---- seeding the replay buffer ---------------------------------------------------------------------
def _chunk_starts(steps: int, noise: np.ndarray | None, chunk_size: int) -> list[int]:
    """Where chunk steps begin, as `RecordedEpisode.chunk_steps` groups them: at every row with noise,
    else every `chunk_size` rows."""
    if noise is not None and steps > 0 and not np.isnan(noise[0]).all():
        return [t for t in range(steps) if not np.isnan(noise[t]).all()]
    return list(range(0, steps, chunk_size))


def seed_transitions(run_dir: str | Path, *, observation_space, noise_shape: tuple[int, ...], chunk_shape: tuple[int, ...],
                     label: str, form: str) -> Iterator[dict[str, Any]]:
    """The complete episodes of a recorded run as `ReplayBuffer.add_episode` arguments (without the
    features): observations at every chunk step and the final one, noise (None when not recorded),
    chunks, rewards, terminated, truncated."""
    where = f"train.seed_runs entry '{run_dir}'"
    try:
        run = RecordedRun(run_dir)
    except RecordingError as err:
        raise ConfigError(f"{where}: {err}") from err
    spaces = observation_space.spaces
    cameras = [k[:-len("_image")] for k, s in spaces.items() if s.dtype == np.uint8 and len(s.shape) == 3]
    missing = [c for c in cameras if c not in run.cameras]
    if missing:
        raise ConfigError(f"{where} recorded the cameras {run.cameras}, not {missing}; seed from a run with this run's cameras.")
    for episode in run.episodes(images=bool(cameras)):
        if not len(episode):
            continue
        observations = {k: v for k, v in episode.observations.items() if k in spaces}
        if sorted(observations) != sorted(spaces) or any(v.shape[1:] != spaces[k].shape for k, v in observations.items()):
            got = {k: v.shape[1:] for k, v in episode.observations.items()}
            want = {k: s.shape for k, s in spaces.items()}
            raise ConfigError(f"{where} has observations {got}; this run's environment gives {want}. "
                              "Seed from a run with the same observations.")
        if len(observations[next(iter(observations))]) <= len(episode):
            continue  # no final observation: a recording not made by an episode loop
        episode.observations = observations
        steps = episode.chunk_steps(chunk_shape[0])
        noise, chunks = steps["noise"], steps["chunks"]
        if noise is not None and noise.shape[1:] != tuple(noise_shape):
            raise ConfigError(f"{where} recorded noise of shape {noise.shape[1:]}; this base policy's is {tuple(noise_shape)}. "
                              "Seed from a run of a policy with the same chunk size.")
        if chunks.shape[1:] != tuple(chunk_shape):
            raise ConfigError(f"{where} recorded chunks of shape {chunks.shape[1:]}; this run's are {tuple(chunk_shape)}.")
        starts = _chunk_starts(len(episode), episode.noise, chunk_shape[0])
        yield {"observations": steps["observations"], "noise": noise, "chunks": chunks,
               "rewards": seed_rewards(episode.labels.get(label), form, starts + [len(episode)], steps["rewards"]),
               "terminated": steps["terminated"], "truncated": steps["truncated"]}


def seed_rewards(label: dict | None, form: str, step_frames: list[int], recorded: np.ndarray) -> np.ndarray:
    """One reward per chunk step: the label shaped by `form` (dense: from the label's per-frame
    progress), else the recorded per-step rewards summed over each chunk step."""
    if label is None or (form == "dense" and label.get("progress") is None):
        return np.asarray(recorded, np.float32)
    if form == "dense":
        return progress_deltas(np.asarray(label["progress"], np.float32), step_frames)
    score = EpisodeScore(reward=float(label.get("reward") or 0.0), success=bool(label.get("success")), score=label.get("score"))
    return shape_rewards(form, score, len(step_frames) - 1)
