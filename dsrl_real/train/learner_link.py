"""The robot side's link to the learner of learner.mode=ray (remote_learner.py) over Ray: it reaches Ray (a
local `ray.init()`, or the cluster at learner.address), starts the learner actor or connects to the one
running, and refuses, in one sentence, a learner whose config or architecture differs from the robot's.
Every call has a deadline. A learner that dies or misses one is *lost* (`LearnerLost`, `lost` says why);
`reconnect` reaches it again, the one running under the run's name or (learner.spawn) a new one this side
starts, without waiting unless told to (recovery.py decides what the robot does meanwhile). With
learner.spawn=false this side never starts a learner: it waits, up to learner.wait_s, for one started
elsewhere. `close()` ends what this side started: the learners it created, and Ray if it started it, so no
Ray process outlives the run.

Ray is imported only here, and only when learner.mode=ray: the default install has none.
"""

from __future__ import annotations

import errno
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LearnerConfig
from ..data.replay_segments import SEGMENT
from ..errors import MissingExtraError, UserError
from ..storage import fsync_dir, write_atomic
from . import checkpoints
from .checkpoints import REPLAY
from .remote_learner import LEARNER_FILES, STATE_FILE, LearnerSpec, RemoteLearner, cannot_load, fingerprint, mismatch

log = logging.getLogger("dsrl_real.train.learner_link")
RAY_HINT = 'pip install -e ".[ray]"'  # ray is an extra: the default install has none
NAMESPACE = "dsrl_real"  # the Ray namespace of the learner actors; each is named after its run (`learner_name`)
ACTOR_ID = "robot"  # the id of the run's own robot; the simulated actors beside it are sim-1, sim-2, ... (fleet.py)


POLL_S = 0.2  # between looks for a learner that has not come up yet (within a deadline)


class LearnerError(UserError):
    """The learner cannot be reached, refuses this robot, or failed; the message says what to do."""


class LearnerLost(LearnerError):
    """The learner died or missed a deadline: the robot side may take it back (`LearnerLink.reconnect`).
    `reason`: what happened, one clause."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def learner_name(run_id: str) -> str:
    return f"dsrl_learner:{run_id}"


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise MissingExtraError(f"learner.mode=ray needs Ray, which is not installed: {RAY_HINT} (or set learner.mode=inline).") from err
    return ray


class LearnerLink:
    def __init__(self, cfg: LearnerConfig, spec: LearnerSpec, denoise: Callable | None = None, actor_id: str = ACTOR_ID):
        ray = import_ray()
        self.ray, self.cfg, self.spec, self.denoise, self.actor_id = ray, cfg, spec, denoise, actor_id
        self.name = learner_name(spec.run_id)
        self.started_ray = False
        self.handle = None
        self.created = False  # whether this side started `handle` (close() then ends it)
        self._coming: tuple | None = None  # a learner being reached (see _find_or_start)
        self._mine: list = []  # every learner this side started (close() ends those still there)
        self.lost: str | None = "not reached yet"  # why the learner is not reachable now, or None
        self.acting_version = 0  # the learner version whose parameters act (0: the initial ones, as the robot's agent has)
        self.fresh: dict[str, Any] | None = None  # newer parameters received, swapped in at the next episode boundary
        self.gradient_steps = 0  # the learner's, at the last `absorb`
        self.stored = 0  # the counted episodes the learner held at the last acknowledgement (every actor's)
        self.throughput: dict[str, Any] = {}  # each actor's and the learner's pace, at the last `absorb` (analysis/robot_idle.py)
        self.where = cfg.address or "a local Ray"
        if not ray.is_initialized():
            try:
                with warnings.catch_warnings():
                    # JAX warns of any fork once it runs; Ray's daemons are forked only to exec at once, which is safe.
                    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                    # The learner's own output stays in Ray's session logs: this process's stdout ends in the run's JSON result.
                    ray.init(address=cfg.address or None, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise LearnerError(f"Ray at learner.address={cfg.address!r} could not be reached ({first_line(err)}); start it "
                                   "(ray start --head on the learner's machine) or fix the address.") from err
            self.started_ray = True
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        """Reach the learner at the start: the one running, or one this side starts (learner.spawn), within
        learner.connect_timeout_s; with spawn=false, one started elsewhere within learner.wait_s."""
        cfg = self.cfg
        wait = cfg.connect_timeout_s
        if not cfg.spawn:
            self._coming = self._find_or_start()
            if self._coming is None:
                log.info(f"No learner runs as '{self.name}' on {self.where} yet; this side waits up to learner.wait_s={cfg.wait_s:g} s "
                         "for one started there from this run's config.")
                wait = cfg.wait_s
        if self.reconnect(wait):
            return
        if self._coming is None:
            raise LearnerError(f"No learner came up as '{self.name}' on {self.where} within learner.wait_s={cfg.wait_s:g} s; start "
                               "it there from this run's config, or set learner.spawn=true to let this side start it.")
        raise LearnerError(f"The learner did not answer within {wait:g} s (to reach the learner on {self.where}); check that its "
                           f"node runs and has learner.num_gpus={cfg.num_gpus:g} free, or raise learner.connect_timeout_s.")

    def reconnect(self, wait_s: float) -> bool:
        """Reach the learner (after `lost`): the one running under the run's name, else, with learner.spawn,
        a new one this side starts. True once it answers and its fingerprint matches (a mismatch is a
        LearnerError); False if that did not happen within `wait_s` (0: only what is ready now; a learner
        still starting is looked at again by the next call)."""
        deadline = time.monotonic() + wait_s
        while True:
            if self._coming is None:
                self._coming = self._find_or_start()
            if self._coming is not None:
                handle, ref, created, new = self._coming
                ready, _ = self.ray.wait([ref], timeout=max(0.0, deadline - time.monotonic()))
                if ready:
                    self._coming = None
                    try:
                        theirs = self.ray.get(ref, timeout=self.cfg.connect_timeout_s)
                    except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError) as err:
                        if new:  # the learner this call started failed to start: starting more would fail alike
                            raise LearnerError(f"The learner failed to start ({first_line(err)}); Ray's session logs on "
                                               f"{self.where} say why.") from err
                        log.debug(f"The learner died while being reached ({first_line(err)}); looking again.")
                        theirs = None
                    if theirs is not None:
                        problem = mismatch(fingerprint(self.spec), theirs)
                        if problem:
                            raise LearnerError(problem)
                        self.handle, self.created, self.lost = handle, created, None
                        return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._coming is None:
                time.sleep(min(POLL_S, left))

    def _find_or_start(self) -> tuple | None:
        """(handle, its fingerprint's ref, created by this side, started by this call) of the learner running under
        the run's name, else of one this side starts (learner.spawn); None when there is none to reach yet."""
        ray = self.ray
        try:
            handle = ray.get_actor(self.name, namespace=NAMESPACE)
        except ValueError:
            handle = None
        if handle is not None:
            created = any(handle._actor_id == mine._actor_id for mine in self._mine)
            if not created:
                log.info(f"Connected to the running learner '{self.name}'.")
            return handle, handle.fingerprint.remote(), created, False
        if not self.cfg.spawn:
            return None
        actor = ray.remote(RemoteLearner).options(name=self.name, namespace=NAMESPACE, num_cpus=1, num_gpus=self.cfg.num_gpus,
                                                   max_concurrency=4, max_restarts=0)
        try:
            handle = actor.remote(self.spec, self.denoise)
        except ValueError as err:  # the name is still held by the learner that just died
            log.debug(f"The learner could not be started yet ({first_line(err)}).")
            return None
        self._mine.append(handle)
        return handle, handle.fingerprint.remote(), True, True

    def _get(self, ref, doing: str, timeout: float | None = None):
        """ray.get with a deadline, turning the learner's absence or failure into one sentence."""
        ray = self.ray
        timeout = self.cfg.connect_timeout_s if timeout is None else timeout
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError as err:
            self.lost = f"it did not answer within {timeout:g} s when asked to {doing}"
            raise LearnerLost(f"The learner did not answer within {timeout:g} s (to {doing}); check that its node runs and has "
                              f"learner.num_gpus={self.cfg.num_gpus:g} free, or raise learner.connect_timeout_s.", self.lost) from err
        except ray.exceptions.RayActorError as err:
            self.lost = f"it stopped when asked to {doing}: {first_line(err)}"
            raise LearnerLost(f"The learner stopped ({first_line(err)}) when asked to {doing}; the run's checkpoints keep "
                              "everything up to the last one: run again with --resume.", self.lost) from err
        except ray.exceptions.RayTaskError as err:
            raise LearnerError(f"The learner failed to {doing} ({first_line(err.cause if err.cause else err)}); "
                               "run again with --resume from the last checkpoint.") from err

    # -- the robot loop's side ----------------------------------------------------------------------
    def absorb(self, index: int, policy_version: int, chunk_steps: dict[str, Any], env_steps: int, max_lag: int,
               success: bool = False) -> dict[str, Any]:
        """After this actor's episode `index` (acted by `policy_version`): send it (acknowledged once stored),
        then take the newest parameters, waiting (up to learner.policy_wait_s) only when they would trail the
        episodes the learner holds (every actor's) by more than `max_lag` versions. Returns that version's
        update metrics, `gradient_steps_per_env_step` (the learner's steps since the last call, per env step
        of this episode), each actor's throughput (`actors`) and the learner's (`learner_steps_per_s`)."""
        ack = self.add_episode(index, policy_version, chunk_steps, env_steps=env_steps, success=success)
        need = ack["index"] - max_lag if ack["stored"] else index - max_lag
        have = self.fresh["version"] if self.fresh is not None else self.acting_version
        got = self.params(have, at_least=need, timeout_s=self.cfg.policy_wait_s if have < need else 0.0)
        if got["params"] is not None:
            self.fresh = got
        if got["version"] < need:
            log.warning(f"The learner's parameters are {index - got['version']} versions behind the episodes sent, more than "
                        f"learner.max_policy_lag={max_lag}, after waiting learner.policy_wait_s={self.cfg.policy_wait_s:g} s; "
                        "the next episode runs with them.")
        steps, self.gradient_steps = got["gradient_steps"] - self.gradient_steps, got["gradient_steps"]
        self.throughput = {"actors": got["actors"], "learner_steps_per_s": got["learner_steps_per_s"]}
        return {**got["metrics"], "gradient_steps_per_env_step": steps / max(1, env_steps), **self.throughput}

    def swap(self, agent) -> int:
        """At an episode boundary: act with the newest parameters received (if any); the acting version."""
        if self.fresh is not None:
            agent.load_acting_params(self.fresh["params"])
            self.acting_version, self.fresh = self.fresh["version"], None
        return self.acting_version

    def sync(self, agent) -> None:
        """Give `agent` the learner's whole state once its owed gradient work is done, keeping the
        agent's own acting stream (the end of a run: the final evaluation and result use it)."""
        full = self.state(self.cfg.policy_wait_s)
        full["state"]["act_rng"] = agent.act_stream
        agent.load_state_dict(full)
        self.fresh = None

    def write_checkpoint(self, folder: Path, act_stream: np.ndarray) -> dict:
        """The learner's part of a checkpoint (with the robot's acting stream `act_stream`), its files' bytes
        through Ray's object store, written into `folder` (a checkpoint being staged, on this side); the replay
        segments this side's previous checkpoint holds are not sent but linked from it. The sampling stream's
        state, for counters.json."""
        folder, earlier = Path(folder), checkpoints.Earlier(folder)
        have = sorted(name for name in earlier.names(REPLAY) if SEGMENT.fullmatch(name))
        snap = self.checkpoint(act_stream, have, self.cfg.policy_wait_s)
        for name in snap["linked"]:
            if not earlier.link(name, folder):  # listed a moment ago; only a hand in the run folder removes it
                raise FileNotFoundError(errno.ENOENT, "a replay segment of the previous checkpoint is gone", str(earlier.folder / name))
        for name, data in snap["files"].items():
            (folder / name).parent.mkdir(exist_ok=True)
            write_atomic(folder / name, data)
        if (folder / REPLAY).is_dir():
            fsync_dir(folder / REPLAY)  # the links
        return snap["sample_rng"]

    def load_checkpoint(self, folder: Path, episodes: int, sample_rng: dict) -> str | None:
        """The learner continues from `folder`; what is wrong with it (one clause), or None."""
        restored = self.restore(folder, episodes, sample_rng)
        if restored["problem"] is None:
            self.acting_version, self.fresh, self.gradient_steps = restored["version"], None, restored["gradient_steps"]
        return restored["problem"]

    # -- the calls --------------------------------------------------------------------------------
    def add_episode(self, seq: int, policy_version: int, chunk_steps: dict[str, Any], counted: bool = True,
                    actor_id: str | None = None, env_steps: int = 0, success: bool = False) -> dict[str, Any]:
        """Send one episode (this side's, unless `actor_id` names another) and wait for its acknowledgement
        (stored): never for its gradient steps."""
        ref = self.handle.add_episode.remote(self.spec.run_id, actor_id or self.actor_id, seq, policy_version, chunk_steps, counted,
                                             env_steps, success)
        ack = self._get(ref, f"store episode {seq}")
        self.stored = ack["episodes"]
        return ack

    def params(self, have: int, at_least: int = 0, timeout_s: float = 0.0) -> dict[str, Any]:
        """The learner's newest version (RemoteLearner.params), waiting at most `timeout_s` for `at_least`."""
        ref = self.handle.params.remote(have, at_least, timeout_s)
        return self._get(ref, "send its parameters", timeout=timeout_s + self.cfg.connect_timeout_s)

    def state(self, timeout_s: float) -> dict[str, Any]:
        return self._get(self.handle.state.remote(), "send the agent's state", timeout=timeout_s + self.cfg.connect_timeout_s)

    def checkpoint(self, act_stream: np.ndarray, have: list[str], timeout_s: float) -> dict[str, Any]:
        """RemoteLearner.checkpoint: the files come back as bytes, but the replay segments named in `have`."""
        return self._get(self.handle.checkpoint.remote(act_stream, have), "write its checkpoint",
                         timeout=timeout_s + self.cfg.connect_timeout_s)

    def restore(self, folder: Path, episodes: int, sample_rng: dict) -> dict[str, Any]:
        """RemoteLearner.restore from the checkpoint in `folder` on this side, whose files are read here and
        sent as bytes; a file that cannot be read is the problem, named as the learner names one."""
        folder, files = Path(folder), {}
        replay = checkpoints.replay_name(folder)
        for name in (*LEARNER_FILES, replay):
            path = folder / name
            if name == STATE_FILE and not path.exists():  # written in inline mode: the learner owes nothing
                continue
            try:
                if name == REPLAY:  # every segment: the learner keeps none of its own
                    files.update({f"{REPLAY}/{p.name}": p.read_bytes() for p in sorted(path.iterdir())})
                else:
                    files[name] = path.read_bytes()
            except OSError as err:
                return {"problem": cannot_load(str(folder), name, err), "version": self.acting_version}
        return self._get(self.handle.restore.remote(files, episodes, sample_rng, str(folder)), "load the checkpoint")

    def acknowledged(self) -> list[int]:
        """This side's episodes the learner holds (their sequence numbers)."""
        return self._get(self.handle.acknowledged.remote(self.actor_id), "list the episodes it holds")

    def stats(self) -> dict[str, Any]:
        return self._get(self.handle.stats.remote(), "report its statistics")

    def close(self) -> None:
        """End the learners this side started and Ray if this side started it (idempotent)."""
        ray = self.ray
        try:
            for handle in self._mine:
                try:
                    ray.get(handle.close.remote(), timeout=self.cfg.connect_timeout_s)
                except Exception as err:  # it may be gone already; the kill below ends it either way
                    log.debug(f"A learner did not close cleanly: {err}")
                ray.kill(handle)
            if self._mine:
                self._wait_gone()
        finally:
            self.handle, self.created, self._coming, self._mine = None, False, None, []
            if self.started_ray:
                self.started_ray = False
                ray.shutdown()

    def _wait_gone(self) -> None:
        """Until Ray no longer knows the learner's name (a later run of this folder then starts a fresh
        one), at most learner.connect_timeout_s."""
        deadline = time.monotonic() + self.cfg.connect_timeout_s
        while time.monotonic() < deadline:
            try:
                self.ray.get_actor(self.name, namespace=NAMESPACE)
            except ValueError:
                return
            time.sleep(0.05)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(".")
