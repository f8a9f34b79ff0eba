"""The learner of learner.mode=ray: the agent's training state and the replay buffer, in the process Ray runs
it in (a Ray actor; learner_link.py starts it or connects to it). Ray is not imported here: this is a plain
class that Ray wraps, so it is tested and read like any other.

Episodes come in with `add_episode(run_id, actor_id, seq, policy_version, chunk_steps)`: stored at once
and acknowledged, an (actor_id, seq) seen before never counted twice. Each counted episode owes the
gradient work inline mode does for it (updates.updates_due, the same number per chunk step), which
a worker thread pays, oldest episode first; when an episode's work is done its index becomes the
learner's *version*, and the acting parameters of that version replace the previous ones (latest
wins: no queue grows). `params` answers with them, waiting (within a deadline) for a version the
robot needs. Sampling and the gradient steps draw from the same stream as inline mode's
(default_rng([run.seed, 1])), so a robot that waits for every version (max_policy_lag 0) gets
exactly inline mode's run.

Its part of a checkpoint (agent.msgpack, learner.json and the replay buffer's segments, replay/) travels as
bytes through Ray's object store, both ways: the learner may run on a GPU box that shares no filesystem with
the robot's PC, whose run folder holds the checkpoints. A checkpoint sends only the segments the robot's
previous checkpoint lacks; the robot links the others from it (train/checkpoints.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..agents.dsrl import DSRLAgent
from ..agents.dsrl import checkpoint as agent_checkpoint
from ..config import AgentConfig
from ..data import replay_files, replay_segments
from ..data.replay import SEGMENT_SLOTS, ReplayBuffer, ReplayFileError
from ..storage import write_atomic
from .checkpoints import REPLAY, REPLAY_NPZ, replay_name
from .updates import draw, updates_due

STATE_FILE = "learner.json"  # in a checkpoint folder: the learner's bookkeeping beside agent.msgpack and the replay buffer
LEARNER_FILES = ("agent.msgpack", STATE_FILE)  # the learner's part of a checkpoint folder, besides the replay buffer (REPLAY)


def learner_file(name: str) -> bool:
    """Whether `name` (a path inside a checkpoint folder) is one of the learner's: never a path the robot side chose."""
    under, _, rest = name.partition("/")
    if under == REPLAY and rest:
        return rest == replay_segments.INDEX or replay_segments.SEGMENT.fullmatch(rest) is not None
    return name in LEARNER_FILES or name == REPLAY_NPZ


@dataclass(frozen=True)
class LearnerSpec:
    """What the learner is built from; the robot side builds the same one from its config and
    environment, and the two must agree (`fingerprint`)."""

    run_id: str
    agent: AgentConfig
    obs_dim: int  # the agent's input features
    noise_shape: tuple[int, int]
    seed: int  # run.seed: the sampling stream is default_rng([seed, 1]), as inline mode's
    buffer_capacity: int
    warm_start_episodes: int
    updates_per_chunk: int
    action_bounds: tuple[np.ndarray, np.ndarray] | None = None
    image_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    buffer_segment_slots: int = SEGMENT_SLOTS


def fingerprint(spec: LearnerSpec) -> dict[str, Any]:
    """The config and architecture as plain values, named as the config names them."""
    out: dict[str, Any] = {"run": spec.run_id, "run.seed": spec.seed, "feature_dim": spec.obs_dim, "noise_shape": list(spec.noise_shape),
                           "image_shapes": {k: list(v) for k, v in sorted(spec.image_shapes.items())},
                           "action_bounds": None if spec.action_bounds is None else [np.asarray(b).tolist() for b in spec.action_bounds],
                           "train.buffer_capacity": spec.buffer_capacity, "train.buffer_segment_slots": spec.buffer_segment_slots,
                           "train.warm_start_episodes": spec.warm_start_episodes,
                           "train.updates_per_chunk": spec.updates_per_chunk}
    out.update({f"agent.{k}": _plain(v) for k, v in dataclasses.asdict(spec.agent).items()})
    return out


def cannot_load(where: str, name: str, err: BaseException, staged: str | None = None) -> str:
    """The clause saying that file `name` of the checkpoint folder `where` cannot be loaded; a path of the
    learner's own temporary copy (`staged`) in the error reads as the robot's folder."""
    detail = str(err).split(";")[0].rstrip(".")
    if staged:
        detail = detail.replace(staged, str(where))
    return f"{Path(where).name}/{name} cannot be loaded ({type(err).__name__}: {detail})"


def mismatch(robot: dict[str, Any], learner: dict[str, Any]) -> str | None:
    """The one sentence refusing a learner whose fingerprint differs from the robot's, or None."""
    for key in sorted(set(robot) | set(learner)):
        if robot.get(key) != learner.get(key):
            return (f"The learner was built for {key}={learner.get(key)!r}, but this robot's side has {robot.get(key)!r}; start the "
                    "learner from the robot's config (or point learner.address at this run's learner) and connect again.")
    return None


@dataclass
class ActorTally:
    """One actor's counted episodes as the learner took them in: its throughput (env steps per second between
    its first episode's arrival and its last's) and success rate, for the robot side's records."""

    episodes: int = 0
    env_steps: int = 0
    successes: int = 0
    first_s: float | None = None  # the learner's clock at its first episode's arrival
    first_env_steps: int = 0  # that episode's env steps (they were collected before `first_s`)
    last_s: float = 0.0

    def add(self, env_steps: int, success: bool, now: float) -> None:
        if self.first_s is None:
            self.first_s, self.first_env_steps = now, env_steps
        self.episodes, self.env_steps, self.successes, self.last_s = self.episodes + 1, self.env_steps + env_steps, \
            self.successes + bool(success), now

    def summary(self) -> dict[str, Any]:
        span = self.last_s - self.first_s if self.first_s is not None else 0.0
        rate = (self.env_steps - self.first_env_steps) / span if span > 0 else None
        return {"episodes": self.episodes, "env_steps": self.env_steps, "success_rate": self.successes / max(1, self.episodes),
                "env_steps_per_s": None if rate is None else round(rate, 4)}


@dataclass
class _Owed:
    """A counted episode's gradient work still to do."""

    index: int
    updates: int
    metrics: dict[str, float] = field(default_factory=dict)  # the last update's


class RemoteLearner:
    def __init__(self, spec: LearnerSpec, denoise: Callable | None = None):
        self.spec = spec
        self.agent = DSRLAgent(spec.agent, spec.obs_dim, spec.noise_shape, action_bounds=spec.action_bounds,
                               image_shapes=spec.image_shapes or None)
        self.buffer = ReplayBuffer(spec.buffer_capacity, spec.buffer_segment_slots)
        self.sample_rng = np.random.default_rng([spec.seed, 1])
        self.denoise = denoise  # the base policy's sampler (DSRL-NA)
        # Two locks: the buffer's (and the sampling stream's and the bookkeeping's), held briefly, so an
        # episode is stored while a gradient step runs; and the agent's, held for one update at a time.
        self._books = threading.Condition()
        self._agent_lock = threading.Lock()
        self._turns_waiting = 0  # calls waiting for the agent's lock (`_agent_turn`); the worker lets them go first
        self._published = threading.Condition()
        self._episodes = 0  # counted episodes stored
        self._acked: dict[str, dict[int, int]] = {}  # actor id -> seq -> the episode's index (0: stored, not counted)
        self._actors: dict[str, ActorTally] = {}  # actor id -> its counted episodes since this learner started
        self._first_episode: tuple[float, int] | None = None  # (when, gradient steps) the first counted episode arrived
        self._owed: deque[_Owed] = deque()
        self._version, self._params, self._metrics = 0, self.agent.acting_params(), {}
        # A plain count, set by the worker after each update: reading agent.step itself would wait for the
        # update in flight (seconds at the paper's sizes), and params() must answer the robot at once.
        self._gradient_steps = int(self.agent.step)
        self._error: str | None = None
        self._stopping = False
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._work, name="dsrl-remote-learner", daemon=True)
        self._thread.start()

    # -- connecting ---------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.spec)

    # -- episodes in --------------------------------------------------------------------------------
    def add_episode(self, run_id: str, actor_id: str, seq: int, policy_version: int, chunk_steps: dict[str, Any],
                    counted: bool = True, env_steps: int = 0, success: bool = False) -> dict[str, Any]:
        """Store one episode (`chunk_steps`: ReplayBuffer.add_episode's arguments) and acknowledge it:
        {"stored": False} for an (actor_id, seq) already stored, which changes nothing. An episode not
        `counted` (a seed run's) enters the buffer only. `policy_version`: the version that acted;
        `env_steps` and `success`: the actor's statistics (`actors()`)."""
        if run_id != self.spec.run_id:
            raise ValueError(f"This learner serves run {self.spec.run_id!r}, not {run_id!r}.")
        with self._books:
            self._raise_if_failed()
            seen = self._acked.setdefault(str(actor_id), {})
            if int(seq) in seen:
                return {"stored": False, "index": seen[int(seq)], "episodes": self._episodes}
            self.buffer.add_episode(**chunk_steps)
            index = 0
            if counted:
                self._episodes += 1
                index = self._episodes
                s = self.spec
                self._owed.append(_Owed(index, updates_due(index, s.warm_start_episodes, len(self.buffer), len(chunk_steps["rewards"]),
                                                           s.updates_per_chunk)))
                self._books.notify_all()
                now = time.monotonic()
                self._actors.setdefault(str(actor_id), ActorTally()).add(int(env_steps), bool(success), now)
                if self._first_episode is None:  # the learner's pace counts from here
                    self._first_episode = now, self._gradient_steps
            seen[int(seq)] = index
            return {"stored": True, "index": index, "episodes": self._episodes}

    # -- parameters out -----------------------------------------------------------------------------
    def params(self, have: int = -1, at_least: int = 0, timeout_s: float = 0.0) -> dict[str, Any]:
        """The newest version, waiting up to `timeout_s` for one of at least `at_least`: {"version",
        "params" (the acting parameters, None unless newer than `have`), "metrics" (that version's
        last update's), "gradient_steps" (so far), "episodes"}."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._published:
            while self._version < at_least and self._error is None and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._published.wait(left)
            version, params, metrics = self._version, self._params, self._metrics
        self._raise_if_failed()
        return {"version": version, "params": params if version > have else None, "metrics": metrics,
                "gradient_steps": self._gradient_steps, "episodes": self._episodes, **self.throughput()}

    def throughput(self) -> dict[str, Any]:
        """{"actors": each actor's ActorTally.summary, "learner_steps_per_s": gradient steps per second since the
        first counted episode arrived}."""
        with self._books:
            actors = {a: tally.summary() for a, tally in sorted(self._actors.items())}
            since, steps = self._first_episode or (time.monotonic(), self._gradient_steps)
        span = time.monotonic() - since
        return {"actors": actors, "learner_steps_per_s": round((self._gradient_steps - steps) / span, 4) if span > 0 else None}

    def state(self) -> dict[str, Any]:
        """The agent's whole state (DSRLAgent.state_dict), once the owed gradient work is done."""
        with self._published:
            self._published.wait_for(lambda: self._version >= self._episodes or self._error is not None or self._stopping)
        self._raise_if_failed()
        with self._agent_turn():
            return self.agent.state_dict()

    def acknowledged(self, actor_id: str) -> list[int]:
        """The sequence numbers of `actor_id`'s episodes stored (a learner restored from a checkpoint: those it holds)."""
        with self._books:
            return sorted(self._acked.get(str(actor_id), {}))

    def stats(self) -> dict[str, Any]:
        with self._books:
            owed = sum(o.updates for o in self._owed)
        return {"episodes": self._episodes, "version": self._version, "owed_updates": owed, "gradient_steps": self._gradient_steps,
                "transitions": len(self.buffer), "uptime_s": time.monotonic() - self._started, **self.throughput()}

    # -- checkpoints ----------------------------------------------------------------------------------
    def checkpoint(self, act_stream: np.ndarray, have: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """The learner's part of a checkpoint, a consistent snapshot of every acknowledged episode and the
        gradient work still owed: {"files": name -> bytes (LEARNER_FILES, agent.msgpack carrying the robot's
        acting stream `act_stream`, and replay/index.json with the buffer's segments but those named in `have`,
        the segment files the robot's previous checkpoint holds), "linked": the names ('replay/...') of the
        segments left out, which the robot takes from that checkpoint, "sample_rng" (for counters.json),
        "version", "episodes"}. The files go back as bytes, through Ray's object store: the learner's machine
        need not see the robot's run folder. They are staged by the usual writers in a temporary folder of the
        learner's own."""
        with tempfile.TemporaryDirectory(prefix="dsrl-learner-checkpoint-") as tmp:
            staged = Path(tmp)
            with self._agent_turn(), self._books:
                d = self.agent.state_dict()  # the agent's state is immutable (JAX): written below, outside the locks
                replay = replay_segments.encode(self.buffer, set(have))
                books = {"episodes": self._episodes, "version": self._version,
                         "owed": [[o.index, o.updates] for o in self._owed],
                         "acked": {a: sorted(seqs.items()) for a, seqs in self._acked.items()}}
                write_atomic(staged / STATE_FILE, json.dumps(books).encode())
                out = {"sample_rng": self.sample_rng.bit_generator.state, "version": self._version, "episodes": self._episodes}
            d["state"]["act_rng"] = np.asarray(act_stream)
            agent_checkpoint.write(staged / "agent.msgpack", d)
            out["files"] = {name: (staged / name).read_bytes() for name in LEARNER_FILES}  # outside the locks: the updates go on
        out["files"].update({f"{REPLAY}/{name}": data for name, data in replay.items()})
        index = json.loads(replay[replay_segments.INDEX])
        out["linked"] = [f"{REPLAY}/{e['file']}" for e in index["segments"] if e["file"] not in replay]
        return out

    def restore(self, files: dict[str, bytes], episodes: int, sample_rng: dict, where: str = "checkpoint") -> dict[str, Any]:
        """Continue from a checkpoint's files (name -> bytes, as `checkpoint` gives them, read from the robot's
        checkpoint folder `where`; written in either learner mode: without learner.json the learner owes
        nothing), loaded from a temporary copy of the learner's own. {"problem": what is wrong with them (one
        clause naming the file in `where`) or None, "version", "gradient_steps"}."""
        name = "agent.msgpack"
        with tempfile.TemporaryDirectory(prefix="dsrl-learner-restore-") as tmp:
            staged = Path(tmp)
            try:
                for known, data in files.items():
                    if learner_file(known):  # only these names: never a path the robot side chose
                        (staged / known).parent.mkdir(exist_ok=True)
                        (staged / known).write_bytes(data)
                with self._agent_turn(), self._books:
                    self.agent.load(staged / name)
                    name = replay_name(staged)
                    self.buffer.take(replay_files.load(staged / name))
                    name = STATE_FILE
                    books = {"episodes": episodes, "version": episodes, "owed": [], "acked": {}}
                    if (staged / name).exists():
                        books = json.loads((staged / name).read_text())
                    self.sample_rng.bit_generator.state = sample_rng
                    self._episodes = int(books["episodes"])
                    self._owed = deque(_Owed(int(i), int(u)) for i, u in books["owed"])
                    self._acked = {a: {int(s): int(i) for s, i in seqs} for a, seqs in books["acked"].items()}
                    params = self.agent.acting_params()
                    self._gradient_steps = int(self.agent.step)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, ReplayFileError) as err:
                return {"problem": cannot_load(where, name, err, staged=tmp), "version": self._version}
        with self._published:
            self._version, self._params, self._metrics = int(books["version"]), params, {}
            self._published.notify_all()
        with self._books:
            self._books.notify_all()
        return {"problem": None, "version": self._version, "gradient_steps": self._gradient_steps}

    def close(self) -> None:
        """Stop the worker thread after the update in progress."""
        with self._books:
            self._stopping = True
            self._books.notify_all()
        with self._published:
            self._published.notify_all()
        self._thread.join()

    # -- the worker thread --------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while True:
                with self._books:
                    self._books.wait_for(lambda: (self._owed and not self._turns_waiting) or self._stopping)
                    if self._stopping:
                        return
                # One update, or one version's publication, at a time under the agent's lock, which a checkpoint
                # takes too: it then sees the sampling stream, the agent, the work owed and the version of one moment.
                with self._agent_lock:
                    with self._books:
                        if not self._owed:  # a restore emptied it meanwhile
                            continue
                        job = self._owed[0]
                        batch = draw(self.agent, self.buffer, self.sample_rng) if job.updates else None
                    if batch is not None:
                        job.metrics = self.agent.update(batch, denoise=self.denoise if self.agent.na else None)
                        self._gradient_steps = int(self.agent.step)
                        with self._books:
                            job.updates -= 1
                    if job.updates == 0:
                        with self._books:
                            self._owed.popleft()
                        params = self.agent.acting_params()
                        with self._published:
                            self._version, self._params, self._metrics = job.index, params, job.metrics
                            self._published.notify_all()
        except BaseException as err:  # reported to the robot side by its next call
            with self._published:
                self._error = f"{type(err).__name__}: {err}"
                self._published.notify_all()
            raise

    @contextlib.contextmanager
    def _agent_turn(self):
        """The agent's lock for a call (a checkpoint, a restore, the state), before the worker's next update.
        Python's locks are not fair: the worker, taking the lock back the moment an update ends, kept a
        checkpoint waiting through all the gradient work owed (45 s of the robot standing still in
        `dsrl-real bench robot-idle`). Now the call waits for the update in flight at most."""
        with self._books:
            self._turns_waiting += 1
        try:
            with self._agent_lock:
                yield
        finally:
            with self._books:
                self._turns_waiting -= 1
                self._books.notify_all()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"The learner's gradient steps failed ({self._error}).")


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
