"""actors.num > 1 (learner.mode=ray, a simulated robot): more simulated actors beside the run's own robot.

Each is a Ray actor (`SimActor`) with its own id (sim-1, sim-2, ...) and seed (run.seed + SEED_STRIDE * i). It
builds its own environment, base policy and acting agent from the run's config, records into actors/<id>/ of the
run folder, and collects until the run's own robot ends it: at each episode boundary it swaps in the learner's
newest parameters, then sends the scored episode, acknowledged once stored, exactly as the run's robot does
(learner_link.py). Its episodes are numbered from 1 in its own recording, and on a resume it continues after the
last one the learner holds. When the learner goes away it waits, up to learner.wait_s, for the one the run's
robot starts again (it never starts one), then sends the episodes of its recording the learner lacks.

`Fleet` starts the actors, notices one that stopped (one sentence; the others go on) and ends them all.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from .episode import episode_success
from .learner_link import NAMESPACE, LearnerError, LearnerLink, LearnerLost, first_line, import_ray
from .remote_learner import LearnerSpec

log = logging.getLogger("dsrl_real.train.fleet")
SEED_STRIDE = 1000  # actor i's run.seed is the run's + SEED_STRIDE * i: scenes no other actor sees
ACTORS_DIR = "actors"  # in the run folder: one recording per simulated actor


def actor_ids(num: int) -> list[str]:
    """The ids of the simulated actors beside the run's own robot."""
    return [f"sim-{i}" for i in range(1, num)]


def actor_config(cfg: Config, i: int) -> Config:
    """Simulated actor i's config: the run's, with its own seed and recording folder, joining (never starting)
    the run's learner, and no evaluation, seed runs or wandb run of its own."""
    own = copy.deepcopy(cfg)
    own.run.seed = cfg.run.seed + SEED_STRIDE * i
    own.train.out_dir = str(Path(cfg.train.out_dir) / ACTORS_DIR / f"sim-{i}")
    own.train.seed_runs, own.train.wandb = [], "disabled"
    own.actors.num = 1
    own.learner = dataclasses.replace(cfg.learner, spawn=False)
    return own


class SimActor:
    """One simulated actor (a Ray actor). `make_trainer(cfg)` builds the trainer whose environment, policy,
    agent and recording it acts with (train/trainer.py's DSRLTrainer); `spec`: the run's learner's."""

    def __init__(self, make_trainer: Callable[[Config], Any], cfg: Config, actor_id: str, spec: LearnerSpec):
        self.cfg, self.actor_id = cfg, actor_id
        self.trainer = make_trainer(cfg)
        own = dataclasses.replace(self.trainer.learner_spec(), run_id=spec.run_id, seed=spec.seed)
        denoise = self.trainer.policy.sample if self.trainer.agent.na else None
        self.link = LearnerLink(cfg.learner, own, denoise, actor_id=actor_id)
        self._stop = threading.Event()
        self.episodes = self.env_steps = 0

    def run(self) -> dict[str, int]:
        """Collect until `stop()`; this actor's episodes and env steps."""
        link, trainer = self.link, self.trainer
        try:
            with trainer.collecting():
                seq = max(link.acknowledged(), default=0)
                link.fresh = link.params(-1)  # act with the learner's parameters from the first episode
                while not self._stop.is_set():
                    version = link.swap(trainer.agent)
                    ep, scored = trainer.act_once(seq + 1)
                    seq += 1
                    self.episodes, self.env_steps = self.episodes + 1, self.env_steps + ep.env_steps
                    try:
                        link.absorb(seq, version, trainer.transitions(ep, scored), ep.env_steps, self.cfg.learner.max_policy_lag,
                                    success=episode_success(ep, scored))
                    except LearnerLost as err:
                        self._take_back(err, seq)
        finally:
            link.close()
            trainer.close()
        return {"episodes": self.episodes, "env_steps": self.env_steps}

    def _take_back(self, err: LearnerLost, seq: int) -> None:
        """Wait (up to learner.wait_s) for the learner the run's robot starts again, then send it the episodes
        1..`seq` of this actor's recording it lacks."""
        wait = self.cfg.learner.wait_s
        log.warning(f"Actor {self.actor_id}: the learner is gone ({err.reason}); it waits up to learner.wait_s={wait:g} s "
                    "for the learner to be back.")
        if not self.link.reconnect(wait):
            raise LearnerError(f"Actor {self.actor_id}: the learner was not back within learner.wait_s={wait:g} s; it stopped.")
        held = set(self.link.acknowledged())
        missing = [n for n in range(1, seq + 1) if n not in held]
        for number, arrays in self.trainer.recorded_episodes(missing):
            if arrays is not None:
                self.link.add_episode(number, -1, arrays)

    def stop(self) -> None:
        """End `run` after the episode in progress."""
        self._stop.set()

    def ready(self) -> str:
        """Answers once the actor is built (its environment, policy and link to the learner)."""
        return self.actor_id


class Fleet:
    """The simulated actors of actors.num beside the run's own robot (an empty fleet for actors.num=1)."""

    def __init__(self, make_trainer: Callable[[Config], Any], cfg: Config, spec: LearnerSpec):
        self.cfg, self.handles, self.runs, self.reported = cfg, {}, {}, set()
        if cfg.actors.num <= 1:
            return
        self.ray = ray = import_ray()
        remote = ray.remote(SimActor)
        for i, actor_id in enumerate(actor_ids(cfg.actors.num), start=1):
            handle = remote.options(name=f"dsrl_actor:{spec.run_id}:{actor_id}", namespace=NAMESPACE, num_cpus=cfg.actors.num_cpus,
                                    max_concurrency=2, max_restarts=0).remote(make_trainer, actor_config(cfg, i), actor_id, spec)
            self.handles[actor_id], self.runs[actor_id] = handle, handle.run.remote()
        # This robot starts once they are up (at most learner.connect_timeout_s): the actors then collect side by side
        # from its first episode. One that fails to start is said by `check`.
        ready, _ = ray.wait([h.ready.remote() for h in self.handles.values()], num_returns=len(self.handles),
                            timeout=cfg.learner.connect_timeout_s)
        log.info(f"Started {len(self.handles)} simulated actors beside this robot ({', '.join(self.handles)}); "
                 f"{len(ready)} up within learner.connect_timeout_s={cfg.learner.connect_timeout_s:g} s.")

    def check(self) -> None:
        """Say, once per actor, that one stopped and why; the others and the run go on."""
        for actor_id, ref in self.runs.items():
            if actor_id in self.reported:
                continue
            ready, _ = self.ray.wait([ref], timeout=0)
            if ready:
                self.reported.add(actor_id)
                going = len(self.runs) - len(self.reported)
                log.warning(f"Actor {actor_id} stopped ({self._why(ref)}); the run goes on with this robot and "
                            f"{going} other simulated actor{'' if going == 1 else 's'}.")

    def _why(self, ref) -> str:
        try:
            done = self.ray.get(ref, timeout=0)
        except Exception as err:  # noqa: BLE001 - whatever ended it (killed, failed), in one clause
            return first_line(err)
        return f"after {done['episodes']} episodes"

    def stop(self) -> None:
        """Let each actor finish its episode (at most learner.connect_timeout_s), then end them all."""
        if not self.handles:
            return
        ray = self.ray
        for handle in self.handles.values():
            try:
                handle.stop.remote()
            except Exception as err:  # noqa: BLE001 - already gone: the kill below is all it needs
                log.debug(f"An actor could not be asked to stop: {err}")
        ray.wait(list(self.runs.values()), num_returns=len(self.runs), timeout=self.cfg.learner.connect_timeout_s)
        for handle in self.handles.values():
            ray.kill(handle, no_restart=True)
        self.handles, self.runs = {}, {}
