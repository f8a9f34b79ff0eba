"""actors.num > 1: simulated actors beside the run's own robot, each a Ray actor feeding the one learner
(train/fleet.py). Tiny agents and 12-step episodes on a Ray of the run's own; every wait is for an event (an
actor's episodes reaching the learner) within a deadline."""

from __future__ import annotations

import logging
import time

import pytest
from conftest import config_refusal
from test_ray_learner import no_ray_yet, ray_daemons, records
from test_train import make_trainer

from dsrl_real.config import load_config
from dsrl_real.recording.reader import RecordedRun
from dsrl_real.train.fleet import SEED_STRIDE, actor_config, actor_ids
from dsrl_real.train.remote_learner import ActorTally

# The tests that start a Ray run on one pytest-xdist worker, one after another (README's `--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("ray")

ray = pytest.importorskip("ray")

DEADLINE_S = 120  # the longest a test waits for simulated actors to start and send episodes


@pytest.fixture(scope="module", autouse=True)
def _no_ray_after_the_module():
    yield
    if ray.is_initialized():
        ray.shutdown()


def wait_for(condition, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {DEADLINE_S} s")
        time.sleep(0.2)
    return found


def actor_episodes(trainer) -> dict[str, int]:
    return {a: s["episodes"] for a, s in trainer.link.stats()["actors"].items()}


def at_training_episode(trainer, episode: int, action) -> None:
    """Call `action()` once, at the first step of this robot's training episode `episode`."""
    step, done = trainer.env.step, []

    def step_then_act(a):
        if trainer.episodes == episode - 1 and trainer.link is not None and not done:
            done.append(action())
        return step(a)

    trainer.env.step = step_then_act


def test_an_actor_tally_is_its_episodes_env_steps_successes_and_pace_after_its_first_episode():
    tally = ActorTally()
    tally.add(12, True, now=100.0)
    assert tally.summary() == {"episodes": 1, "env_steps": 12, "success_rate": 1.0, "env_steps_per_s": None}
    tally.add(10, False, now=104.0)
    tally.add(6, True, now=106.0)  # 16 env steps collected after the first episode arrived, in 6 s
    assert tally.summary() == {"episodes": 3, "env_steps": 28, "success_rate": 2 / 3, "env_steps_per_s": round(16 / 6, 4)}


def test_each_simulated_actor_has_its_own_id_seed_and_recording_folder_and_joins_the_runs_learner(tmp_path):
    cfg = load_config(overrides=[f"train.out_dir={tmp_path}", "learner.mode=ray", "actors.num=3", "run.seed=7"])
    assert actor_ids(3) == ["sim-1", "sim-2"]
    second = actor_config(cfg, 2)
    assert (second.run.seed, second.train.out_dir) == (7 + 2 * SEED_STRIDE, str(tmp_path / "actors" / "sim-2"))
    assert (second.learner.spawn, second.actors.num, second.train.wandb) == (False, 1, "disabled")
    assert (cfg.run.seed, cfg.learner.spawn, cfg.train.out_dir) == (7, True, str(tmp_path))  # the run's own is untouched


@pytest.mark.parametrize(("overrides", "sentence"), [
    (["actors.num=2"], "actors.num = 2 needs learner.mode=ray (one learner that every actor feeds); set it, or actors.num=1."),
    (["actors.num=2", "learner.mode=ray", "robot.kind=widowx"],
     "actors.num = 2 runs simulated actors beside a simulated robot, but robot.kind = 'widowx'; set actors.num=1 with a real robot."),
])
def test_simulated_actors_need_a_ray_learner_and_a_simulated_robot(overrides, sentence):
    assert config_refusal(overrides) == sentence


def test_killing_one_actor_of_several_leaves_the_others_running(tmp_path, caplog):
    """Three actors (this robot, sim-1, sim-2) feed one learner; sim-1 is killed mid-run. This robot finishes its
    budget, sim-2 goes on sending episodes, one sentence says so, and nothing of Ray is left afterwards."""
    no_ray_yet()
    caplog.set_level(logging.INFO, logger="dsrl_real")
    trainer = make_trainer(tmp_path, "train.env_steps=96", "learner.mode=ray", "learner.max_policy_lag=1000", "actors.num=3")
    seen = {}

    def kill_sim_1():
        seen["before"] = wait_for(lambda: (n := actor_episodes(trainer)).get("sim-1") and n.get("sim-2") and n,
                                  "both simulated actors sending episodes")
        ray.kill(trainer.fleet.handles["sim-1"], no_restart=True)
        seen["killed"] = actor_episodes(trainer)

    def sim_2_goes_on():
        seen["after"] = wait_for(lambda: (n := actor_episodes(trainer))["sim-2"] > seen["killed"]["sim-2"] + 1 and n,
                                 "sim-2 sending two more episodes after sim-1 was killed")

    at_training_episode(trainer, 3, kill_sim_1)
    at_training_episode(trainer, 6, sim_2_goes_on)
    result = trainer.run()
    assert result["episodes"] == 8 and result["env_steps"] == 96
    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Actor sim-1 stopped (")]
    assert len(stopped) == 1 and stopped[0].endswith("; the run goes on with this robot and 1 other simulated actor.")
    assert seen["after"]["sim-1"] == seen["killed"]["sim-1"]  # it sent nothing once killed
    episodes = [r for r in records(tmp_path) if r["kind"] == "episode"]
    assert [r["episode"] for r in episodes] == list(range(1, 9))  # this robot's, each once
    assert set(episodes[-1]["actors"]) == {"robot", "sim-1", "sim-2"} and episodes[-1]["actors"]["robot"]["episodes"] == 8
    # sim-2's recording holds what it sent, numbered from 1, on its own scenes
    run = RecordedRun(tmp_path / "actors" / "sim-2")
    sent = sorted(r["train_episode"] for r in run.records if not r.get("partial"))
    assert sent[: seen["after"]["sim-2"]] == list(range(1, seen["after"]["sim-2"] + 1))
    assert not ray.is_initialized() and ray_daemons() == []
