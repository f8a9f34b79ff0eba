"""Reward scoring off the control loop.

`BackgroundScorer` owns the backend's one worker thread. During an episode the loop asks for the
newest prefix to be scored and polls finished results without waiting; a request that is still
waiting when a newer one comes is dropped, so the worker always scores the newest prefix. At the
end of an episode its whole-episode score is a job on the same worker that overlaps the next scene
reset; the trainer puts the episode in the replay buffer when that score arrives, before the
learner samples, so a run stays a deterministic function of its seed. With reward.verify the same job
then puts the human's question about that score (verify.py), so their answer, too, is in before the learner samples.

`EpisodeMonitor` is what the control loop calls after every env step: it sends prefix requests,
feeds results to the stage tracker and success detector, enforces per-stage step limits, and for
human backends polls the keyboard (success, failure, pause, emergency stop); with a person verifying a
reward model's labels (reward.verify=human) it polls their keyboard for pause and emergency stop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config, ConfigError
from ..envs.safety import EmergencyStop
from ..tasks import TaskSpec
from .base import SUCCESS, EpisodeClip, EpisodeScore, ProgressScore, RewardBackend
from .detection import StageTracker, SuccessDetector, stage_segments
from .registry import build_reward_backend, build_verifier
from .shaping import check_form, per_frame, shape_rewards, staged_progress
from .verify import SamplingPlan, Verification, Verifier, VerifyPositives, training_score

HUMAN_BACKENDS = ("human", "sim_human")
END_ON = ("auto", "detector", "env", "time_limit")
SCORING = ("auto", "background", "inline")


# ---- the worker --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrefixRequest:
    """Score the frames `first..last` (inclusive) of the running episode for `stage`'s instruction.

    `frames` and `truth` are the episode's own growing lists; the worker reads only the slice."""

    episode: int
    stage: int
    instruction: str
    first: int
    last: int
    fps: float
    frames: Mapping[str, list]
    truth: list

    def clip(self) -> EpisodeClip:
        frames = {c: np.stack(f[self.first:self.last + 1]) for c, f in self.frames.items()}
        return EpisodeClip(frames=frames, instruction=self.instruction, fps=self.fps,
                           truth=tuple(self.truth[self.first:self.last + 1]))


@dataclass(frozen=True)
class PrefixResult:
    request: PrefixRequest
    score: ProgressScore | None
    error: BaseException | None = None


class BackgroundScorer:
    """One worker thread per backend (backends are never called concurrently). With
    `background=False` every call runs at once in the caller's thread (same results, no thread)."""

    def __init__(self, backend: RewardBackend, background: bool = True):
        self.backend, self.background = backend, background
        self._cond = threading.Condition()
        self._waiting: PrefixRequest | None = None
        self._jobs: deque[tuple[Future, Callable, tuple]] = deque()
        self._results: list[PrefixResult] = []
        self._busy = False
        self._thread: threading.Thread | None = None
        self._closing = False
        self.prefix_calls = 0
        self.dropped = 0

    # -- prefixes -------------------------------------------------------------------------------
    def request_prefix(self, request: PrefixRequest) -> None:
        """Never waits: replaces any request the worker has not started."""
        if not self.background:
            self._results.append(self._score_prefix(request))
            return
        with self._cond:
            if self._waiting is not None:
                self.dropped += 1
            self._waiting = request
            self._start()
            self._cond.notify_all()

    def poll(self) -> list[PrefixResult]:
        """Prefix results finished since the last poll, oldest first; never waits."""
        with self._cond:
            results, self._results = self._results, []
        return results

    def cancel_prefixes(self) -> None:
        """Forget the waiting request and unpolled results (the episode they belong to is over)."""
        with self._cond:
            if self._waiting is not None:
                self.dropped += 1
            self._waiting = None
            self._results.clear()

    def _score_prefix(self, request: PrefixRequest) -> PrefixResult:
        self.prefix_calls += 1
        try:
            return PrefixResult(request, self.backend.score_prefix(request.clip()))
        except Exception as err:  # handed to the control loop, which raises it
            return PrefixResult(request, None, err)

    # -- whole-episode jobs ---------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args) -> Future:
        """Run `fn(*args)` on the worker before any waiting prefix request; never dropped."""
        future: Future = Future()
        if not self.background:
            _run_into(future, fn, args)
            return future
        with self._cond:
            self._jobs.append((future, fn, args))
            self._start()
            self._cond.notify_all()
        return future

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the worker has nothing waiting or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._jobs or self._waiting or self._busy), timeout)

    def close(self) -> None:
        """Finish the queued jobs, then stop the worker (a later call starts a new one)."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join()
        with self._cond:
            self._thread, self._closing = None, False

    # -- the thread -----------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"reward-{self.backend.name}", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._jobs or self._waiting or self._closing)
                job, request = (self._jobs.popleft(), None) if self._jobs else (None, self._waiting)
                self._waiting = None if job is None else self._waiting
                if job is None and request is None:
                    return  # closing and idle
                self._busy = True
            if job is not None:
                _run_into(*job)
                result = None
            else:
                result = self._score_prefix(request)
            with self._cond:
                if result is not None:
                    self._results.append(result)
                self._busy = False
                self._cond.notify_all()


def _run_into(future: Future, fn: Callable, args: tuple) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as err:  # the waiter re-raises it
        future.set_exception(err)


# ---- whole-episode scoring ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredEpisode:
    score: EpisodeScore  # the label training uses (with verify-positives: after the human's answer)
    rewards: np.ndarray  # one per chunk step
    progress: np.ndarray | None = None  # per frame, dense form only
    claim: EpisodeScore | None = None  # verify-positives: the backend's own label
    verification: Verification | None = None  # verify-positives: what the human was asked and said


def score_episode(backend: RewardBackend, frames: Mapping[str, list], truth: Sequence, instruction: str, fps: float,
                  form: str, step_frames: Sequence[int], segments: Sequence[tuple[int, str, int, int]],
                  num_stages: int, verify: VerifyPositives | None = None) -> ScoredEpisode:
    """The backend's end-of-episode score and, for the dense form, progress over each stage's frames; with
    `verify`, the human's answer about the score, and rewards shaped from the label that results."""
    stacked = {c: np.stack(f) for c, f in frames.items()}
    score = backend.score_episode(EpisodeClip(frames=stacked, instruction=instruction, fps=fps, truth=tuple(truth)))
    claim = verification = None
    if verify is not None:
        verification = verify.check(score, instruction, backend.name, tuple(truth))
        claim, score = score, training_score(score, verification)
    progress = None
    if form == "dense":
        parts = []
        for stage, stage_instruction, first, last in segments:
            clip = EpisodeClip(frames={c: a[first:last + 1] for c, a in stacked.items()}, instruction=stage_instruction,
                               fps=fps, truth=tuple(truth[first:last + 1]))
            result = backend.score_prefix(clip)
            positions = result.raw.get("frame_indices") if isinstance(result.raw, dict) else None  # Robometer's subsampling
            parts.append((stage, first, last, per_frame(result.progress, last - first + 1, positions)))
        progress = staged_progress(parts, num_stages, step_frames[-1] + 1)
    return ScoredEpisode(score, shape_rewards(form, score, len(step_frames) - 1, progress, step_frames), progress, claim,
                         verification)


# ---- the per-step monitor ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeEnd:
    reason: str  # success | stage_time_limit | human_success | human_failure
    terminated: bool  # the task was achieved (a true terminal)
    truncated: bool  # ended without success: learners bootstrap through it
    success: bool


def resolve_end_on(end_on: str, backend: RewardBackend) -> str:
    """detector | env | time_limit | human (the keyboard, for human backends)."""
    if end_on not in END_ON:
        raise ConfigError(f"Unknown reward.end_on '{end_on}'; choose one of: {', '.join(END_ON)}.")
    if backend.name in HUMAN_BACKENDS or hasattr(backend, "poll"):
        return "human"
    if end_on == "auto":
        if backend.name == "sim_truth":
            return "env"  # the simulator knows success exactly and ends the episode on the step it happens
        return "detector" if SUCCESS in backend.offers else "time_limit"
    if end_on == "detector" and SUCCESS not in backend.offers:
        raise ConfigError(f"reward.end_on=detector needs success scores during the episode, which the '{backend.name}' "
                          "backend does not give; use reward.end_on=time_limit (or env in simulation).")
    return end_on


class EpisodeMonitor:
    """Called by the control loop after every env step; never waits for a model."""

    def __init__(self, backend: RewardBackend, scorer: BackgroundScorer, stages: Sequence[str], *, instruction: str,
                 fps: float, end_on: str, threshold: float = 0.6, window: int = 3, score_every: int = 1,
                 stage_max_steps: Sequence[int] = (), pause_poll_s: float = 0.05, watcher: Any = None):
        if score_every < 1:
            raise ConfigError(f"reward.score_every_steps must be at least 1, got {score_every}.")
        if stage_max_steps and end_on != "detector":
            raise ConfigError("reward.stage_max_steps needs stages that advance on detected success (reward.end_on=detector); "
                              "leave it empty or use a backend that gives success scores.")
        try:
            self.tracker = StageTracker(stages, SuccessDetector(threshold, window), stage_max_steps)
        except ValueError as err:
            raise ConfigError(f"Bad success-detector settings in reward.*: {err}") from err
        self.backend, self.scorer, self.instruction, self.fps, self.end_on = backend, scorer, instruction, fps, end_on
        self.score_every, self.pause_poll_s = score_every, pause_poll_s
        # a person at a keyboard beside a model's labels (watch(instruction), poll() -> pause/resume/estop), or None
        self.watcher = watcher if end_on != "human" else None
        self.episode = 0
        self.frames: Mapping[str, list] = {}
        self.truth: list = []
        self.wait_s = 0.0  # time the control loop spent in `step`, pauses excluded
        self.paused_s = 0.0
        self._pause_in_this_step = 0.0
        self.last_progress: float | None = None
        self.last_success_prob: float | None = None
        self.prefix_results = 0  # prefix scores used this episode (a recorder notes when a new one came)
        self.keys: list[str] = []  # the human's key events this episode, in order

    def begin(self, frames: Mapping[str, list], truth: list) -> None:
        """A new episode: `frames` (camera -> list) and `truth` are its growing per-frame lists."""
        self.episode += 1
        self.scorer.cancel_prefixes()
        self.tracker.reset()
        self.frames, self.truth = frames, truth
        self.wait_s = self.paused_s = 0.0
        self.last_progress = self.last_success_prob = None
        self.prefix_results = 0
        self.keys = []
        if self.end_on == "human":
            self.backend.start_episode(self.instruction)
        elif self.watcher is not None:
            self.watcher.watch(self.instruction)

    def step(self, env, step: int, info: dict) -> EpisodeEnd | None:
        """After env step `step` (its frame is the newest in the lists): an end, or None to go on."""
        start = time.perf_counter()
        try:
            if self.end_on == "human":
                return self._human(env, info)
            if self.watcher is not None:
                self._safety_keys(env, self.watcher)
            if self.end_on == "detector":
                return self._detect(step)
            return None
        finally:
            self.wait_s += time.perf_counter() - start - self._pause_in_this_step
            self._pause_in_this_step = 0.0

    def finish(self) -> list[int]:
        """The episode is over: drop its pending prefix work; returns the frame each stage began at."""
        self.scorer.cancel_prefixes()
        return list(self.tracker.starts)

    @property
    def detected_success(self) -> bool:
        return self.tracker.done

    # -- detector --------------------------------------------------------------------------------
    def _detect(self, step: int) -> EpisodeEnd | None:
        tracker = self.tracker
        if step % self.score_every == 0:
            self.scorer.request_prefix(PrefixRequest(self.episode, tracker.stage, tracker.instruction, tracker.stage_start, step,
                                                     self.fps, self.frames, self.truth))
        for result in self.scorer.poll():
            if result.request.episode != self.episode:
                continue
            if result.error is not None:
                raise result.error
            progress = np.asarray(result.score.progress).reshape(-1)
            self.last_progress = float(progress[-1]) if len(progress) else None
            self.last_success_prob = float(result.score.success_prob)
            self.prefix_results += 1
            change = tracker.report(result.request.stage, result.score.success_prob, result.request.last)
            if change is not None and change.done:
                return EpisodeEnd("success", terminated=True, truncated=False, success=True)
        if tracker.out_of_steps(step):
            return EpisodeEnd("stage_time_limit", terminated=False, truncated=True, success=False)
        return None

    # -- human -----------------------------------------------------------------------------------
    def _human(self, env, info: dict) -> EpisodeEnd | None:
        if hasattr(self.backend, "observe") and "task_status" in info:
            self.backend.observe(info["task_status"])  # the simulated human watches the scene
        event = self._safety_keys(env, self.backend, ("SUCCESS", "FAILURE"))
        if event == "SUCCESS":
            self.tracker.done = True
            return EpisodeEnd("human_success", terminated=True, truncated=False, success=True)
        if event == "FAILURE":
            return EpisodeEnd("human_failure", terminated=False, truncated=True, success=False)
        return None

    def _safety_keys(self, env, source, ends_pause: tuple[str, ...] = ()) -> str | None:
        """The next key event of `source` (the human backend or the watching verifier): pause (hold the arm until
        resume, or until one of `ends_pause` or an emergency stop) and emergency stop (stop the arm, end the run)
        act here; the event that is left for the caller, or None."""
        event = self._event(source)
        if event == "PAUSE":
            env.hold()
            paused = time.perf_counter()
            while (event := self._event(source)) not in ("RESUME", "ESTOP", *ends_pause):
                time.sleep(self.pause_poll_s)
            self._pause_in_this_step = time.perf_counter() - paused
            self.paused_s += self._pause_in_this_step
            if event == "RESUME":
                env.resume()
                return None
        if event == "ESTOP":
            env.emergency_stop()
            raise EmergencyStop("Emergency stop pressed: the robot is holding its position and the run has ended; "
                                "make the scene safe, then continue with --resume.")
        return event

    def _event(self, source) -> str | None:
        event = source.poll()
        if event is None:
            return None
        self.keys.append(getattr(event, "name", str(event)).upper())
        return self.keys[-1]


# ---- everything the training loop needs --------------------------------------------------------------
class RewardRuntime:
    """The configured backend with its worker, the per-step monitor, the reward shaping and, with
    reward.verify, who confirms the backend's claimed successes (`verifier`, default: the one the config names)."""

    def __init__(self, cfg: Config, task: TaskSpec, fps: float, backend: RewardBackend | None = None,
                 cameras: Sequence[str] | None = None, verifier: Verifier | None = None):
        r = cfg.reward
        if r.camera and cameras is not None and r.camera not in cameras:
            raise ConfigError(f"reward.camera '{r.camera}' is not one of the cameras {list(cameras)}; name one of them or leave it empty.")
        self.backend = backend or build_reward_backend(cfg)
        self.end_on = resolve_end_on(r.end_on, self.backend)
        check_form(r.form, self.backend.offers, self.backend.name)
        if r.scoring not in SCORING:
            raise ConfigError(f"Unknown reward.scoring '{r.scoring}'; choose one of: {', '.join(SCORING)}.")
        inline = r.scoring == "inline" or (r.scoring == "auto" and (self.backend.name == "sim_truth" or self.end_on == "human"))
        self.scorer = BackgroundScorer(self.backend, background=not inline)
        # Stages advance only on detected success; otherwise the backend is asked about the whole task.
        stages = task.stages if r.track_stages and self.end_on == "detector" else (task.instruction,)
        verifier = verifier if verifier is not None else build_verifier(cfg)
        try:
            self.monitor = EpisodeMonitor(self.backend, self.scorer, stages, instruction=task.instruction, fps=fps,
                                          end_on=self.end_on, threshold=r.success_threshold, window=r.success_window,
                                          score_every=r.score_every_steps, stage_max_steps=tuple(r.stage_max_steps),
                                          watcher=verifier if hasattr(verifier, "poll") else None)
        except BaseException:
            self.scorer.close()
            if verifier is not None:
                verifier.close()
            raise
        self.task, self.fps, self.form = task, fps, r.form
        self.verify = None if verifier is None else VerifyPositives(verifier, r.verify_timeout_s, r.verify_failure_fraction,
                                                                    cfg.run.seed, SamplingPlan(r.verify_clearance, r.verify_sample_fraction))

    @property
    def ends_episodes(self) -> bool:
        """True when the monitor (not the environment's own success signal) ends episodes."""
        return self.end_on in ("detector", "human", "time_limit")

    def score(self, frames: Mapping[str, list], truth: Sequence, step_frames: Sequence[int], stage_starts: Sequence[int]) -> Future:
        """Whole-episode scoring on the worker; the future gives a `ScoredEpisode`."""
        stages = self.monitor.tracker.stages
        segments = stage_segments(stages, stage_starts, step_frames[-1])
        return self.scorer.submit(score_episode, self.backend, frames, truth, self.task.instruction, self.fps, self.form,
                                  list(step_frames), segments, len(stages), self.verify)

    def close(self) -> None:
        try:
            self.scorer.close()
            if hasattr(self.backend, "close"):
                self.backend.close()
        finally:
            if self.verify is not None:
                self.verify.close()
