"""learner.mode=ray when the learner goes away and comes back, and when the robot side starts first or goes away
(train/recovery.py, train/learner_link.py): the recording is the durable record, the robot never blocks on the
learner beyond a deadline, and nothing is left running.

Tiny agents and 12-step episodes on a small local Ray, as in test_ray_learner.py; the learner is killed with
ray.kill while the robot runs an episode, and every wait in these tests is for an event (the learner's death,
a log sentence) within a deadline."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading

import numpy as np
import pytest
from test_ray_learner import local_ray, no_ray_yet, ray_daemons, records  # noqa: F401 - local_ray is a fixture
from test_train import make_trainer

from dsrl_real.data import replay_files
from dsrl_real.data.replay import ReplayBuffer
from dsrl_real.recording.reader import RecordedRun
from dsrl_real.recording.seeding import TRAINING_KINDS
from dsrl_real.train import checkpoints
from dsrl_real.train.learner_link import LearnerError, LearnerLink

# The tests that start a Ray run on one pytest-xdist worker, one after another (README's `--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("ray")

ray = pytest.importorskip("ray")

GONE = "The learner is gone ("
BACK = "The learner is back: "


@pytest.fixture(scope="module", autouse=True)
def _no_ray_after_the_module():
    yield
    if ray.is_initialized():
        ray.shutdown()


def kill_learner(handle) -> None:
    """ray.kill the learner, then wait (at most a minute) until a call to it fails: Ray then knows it is dead."""
    ray.kill(handle, no_restart=True)
    for _ in range(60):
        try:
            ray.get(handle.stats.remote(), timeout=1)
        except ray.exceptions.RayActorError:
            return
        except ray.exceptions.GetTimeoutError:
            pass
    raise AssertionError("the killed learner still answers")


def kill_during_episode(trainer, episode: int) -> None:
    """Kill the learner at the first step of training episode `episode` (the learner has all before it, and the
    checkpoint written beside this episode is in place)."""
    step = trainer.env.step

    def step_then_kill(action):
        if trainer.episodes == episode - 1 and trainer.link is not None and not kill_during_episode.done:
            kill_during_episode.done = True
            trainer.checkpointing.join()
            kill_learner(trainer.link.handle)
        return step(action)

    kill_during_episode.done = False
    trainer.env.step = step_then_kill


def messages(caplog, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


def assert_learner_holds_the_recording_once(trainer, episodes: int) -> None:
    """The learner's last checkpoint: every recorded training episode 1..`episodes` acknowledged once, in order,
    and its buffer exactly the buffer those recorded episodes make."""
    newest = checkpoints.listed(trainer.out_dir)[0]
    assert newest.name == checkpoints.folder_name(episodes)
    books = json.loads((newest / "learner.json").read_text())
    assert books["episodes"] == episodes and books["acked"] == {"robot": [[n, n] for n in range(1, episodes + 1)]}
    saved = replay_files.load(newest / "replay")
    recorded = ReplayBuffer(trainer.cfg.train.buffer_capacity)
    for number, arrays in trainer.recorded_episodes(list(range(1, episodes + 1))):
        recorded.add_episode(**arrays)
    assert saved.num_episodes_started == recorded.num_episodes_started == episodes
    for name, array in recorded._arrays().items():
        np.testing.assert_array_equal(saved._arrays()[name], array, err_msg=name)
    for key, array in recorded._obs.items():
        np.testing.assert_array_equal(saved._obs[key], array, err_msg=key)
    assert [r["episode"] for r in records(trainer.out_dir) if r["kind"] == "episode"] == list(range(1, episodes + 1))


def test_a_killed_learner_is_restarted_by_the_robot_side_and_takes_in_every_recorded_episode_once(tmp_path, caplog):
    """learner.on_loss=continue: the robot goes on with the parameters it has; the learner it starts again resumes
    from the last checkpoint and takes in the episodes recorded meanwhile. Its own Ray: nothing is left after."""
    no_ray_yet()
    caplog.set_level(logging.INFO, logger="dsrl_real")
    trainer = make_trainer(tmp_path, "train.env_steps=72", "learner.mode=ray", "learner.on_loss=continue")
    kill_during_episode(trainer, 4)
    result = trainer.run()
    assert result["episodes"] == 6 and kill_during_episode.done
    gone = messages(caplog, GONE)
    assert len(gone) == 1 and " after episode 4; the robot goes on with the parameters it has (learner.on_loss=continue)" in gone[0]
    back = messages(caplog, BACK)
    assert len(back) == 1
    # The learner comes back when it is up (the robot does not wait for it before the run's end), so how many
    # episodes it takes from the recording depends on when: episode 4 and maybe those after it.
    taken = re.fullmatch(r"The learner is back: it resumed from the checkpoint episode_000003 and took in (\d) recorded "
                         r"episodes? it had not acknowledged \(4(?:-(\d))?\)\.", back[0])
    assert taken and int(taken[1]) == int(taken[2] or 4) - 3
    assert_learner_holds_the_recording_once(trainer, 6)
    assert not ray.is_initialized() and ray_daemons() == []  # the restarted learner and Ray are gone


@pytest.mark.usefixtures("local_ray")
def test_on_loss_pause_holds_the_robot_in_its_start_pose_until_the_learner_is_back(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dsrl_real")
    trainer = make_trainer(tmp_path, "train.env_steps=60", "learner.mode=ray", "learner.on_loss=pause")
    kill_during_episode(trainer, 4)
    held = []
    trainer.env.hold = lambda: held.append(("hold", trainer.episodes))
    trainer.env.resume = lambda: held.append(("resume", trainer.episodes))
    assert trainer.run()["episodes"] == 5
    assert held == [("hold", 4), ("resume", 4)]  # after episode 4 ended, before episode 5 began
    assert messages(caplog, GONE)[0].endswith(" after episode 4; the robot holds in its start pose until the learner is back, at "
                                               "most learner.wait_s=600 s (learner.on_loss=pause).")
    assert messages(caplog, BACK) == ["The learner is back: it resumed from the checkpoint episode_000003 and took in 1 recorded "
                                      "episode it had not acknowledged (4)."]
    assert len(messages(caplog, GONE)) == 1
    assert_learner_holds_the_recording_once(trainer, 5)
    assert not ray.util.list_named_actors()  # the learner the robot side started again is gone


@pytest.mark.usefixtures("local_ray")
def test_a_learner_lost_while_its_checkpoint_is_written_beside_an_episode_leaves_the_records_to_the_next_one(tmp_path, caplog,
                                                                                                            monkeypatch):
    """The checkpoint after episode 2 is written beside episode 3; the learner dies as it is asked for its files. The
    robot notices at the next boundary, as it would a loss in a cycle: one sentence, the records of episodes 2 and 3
    wait, and the learner started again resumes from checkpoint 1 and takes in the recorded episodes 2-3."""
    caplog.set_level(logging.INFO, logger="dsrl_real")
    trainer = make_trainer(tmp_path, "train.env_steps=48", "learner.mode=ray", "learner.on_loss=continue")
    write, killed = LearnerLink.write_checkpoint, []

    def killed_while_writing(link, folder, act_stream):
        if folder.name.endswith(checkpoints.folder_name(2)) and not killed:
            killed.append(trainer.episodes)
            kill_learner(link.handle)
        return write(link, folder, act_stream)

    monkeypatch.setattr(LearnerLink, "write_checkpoint", killed_while_writing)
    assert trainer.run()["episodes"] == 4 and killed == [2]
    gone = messages(caplog, GONE)
    assert len(gone) == 1 and "when asked to write its checkpoint" in gone[0]
    assert gone[0].endswith(" after episode 3; the robot goes on with the parameters it has (learner.on_loss=continue) and the "
                            "learner takes in the episodes recorded meanwhile when it is back.")
    assert messages(caplog, BACK) == ["The learner is back: it resumed from the checkpoint episode_000001 and took in 2 recorded "
                                      "episodes it had not acknowledged (2-3)."]
    assert [f.name for f in checkpoints.listed(tmp_path)] == [checkpoints.folder_name(4), checkpoints.folder_name(1)]
    assert_learner_holds_the_recording_once(trainer, 4)  # the metrics records too: 1-4, each once
    assert not ray.util.list_named_actors()


class Said(logging.Handler):
    """Sets `event` when a log message starts with `start`."""

    def __init__(self, start: str):
        super().__init__()
        self.start, self.event = start, threading.Event()

    def emit(self, record):
        if record.getMessage().startswith(self.start):
            self.event.set()


@pytest.mark.usefixtures("local_ray")
def test_a_robot_side_started_first_waits_for_its_learner_which_outlives_it(tmp_path, caplog):
    """learner.spawn=false: the robot side waits (one sentence) for a learner started elsewhere; when the robot side
    fails mid-run the learner keeps what it acknowledged and the checkpoint, and a resumed robot side continues with it."""
    caplog.set_level(logging.INFO, logger="dsrl_real")
    robot = make_trainer(tmp_path, "train.env_steps=48", "learner.mode=ray", "learner.spawn=false", "learner.wait_s=300")
    waiting = Said("No learner runs as ")
    logging.getLogger("dsrl_real").addHandler(waiting)
    learner_side: list[LearnerLink] = []

    def start_the_learner():  # what the learner's machine does, once the robot side waits
        if waiting.event.wait(timeout=300):
            learner_side.append(LearnerLink(dataclasses.replace(robot.cfg.learner, spawn=True), robot.learner_spec()))

    helper = threading.Thread(target=start_the_learner)
    helper.start()
    reset, resets = robot.env.reset, []

    def reset_then_fail(**kwargs):  # the robot side goes away after its third episode
        resets.append(kwargs)
        if len(resets) == 6:  # the two of the base policy's evaluation, then episodes 1-3
            raise RuntimeError("the robot's computer lost power")
        return reset(**kwargs)

    robot.env.reset = reset_then_fail
    try:
        with pytest.raises(RuntimeError, match="lost power"):
            robot.run()
        helper.join()
        assert len(messages(caplog, "No learner runs as ")) == 1
        link = learner_side[0]
        # The learner is still there, with every episode it acknowledged; the robot's last checkpoint holds them.
        assert link.stats()["episodes"] == 3 and link.acknowledged() == [1, 2, 3]
        assert checkpoints.listed(tmp_path)[0].name == checkpoints.folder_name(3)
        resumed = make_trainer(tmp_path, "train.env_steps=48", "learner.mode=ray", "learner.spawn=false", "learner.wait_s=300")
        assert resumed.run(resume=True)["episodes"] == 4
        assert len(messages(caplog, "No learner runs as ")) == 1  # it was running: no wait this time
        assert_learner_holds_the_recording_once(resumed, 4)
        assert link.stats()["episodes"] == 4  # the robot side does not end a learner it did not start
    finally:
        logging.getLogger("dsrl_real").removeHandler(waiting)
        waiting.event.set()
        helper.join()
        for link in learner_side:
            link.close()
    assert not ray.util.list_named_actors()


def test_a_robot_side_waiting_for_a_learner_that_never_comes_stops_at_its_deadline(tmp_path):
    no_ray_yet()
    trainer = make_trainer(tmp_path, "learner.mode=ray", "learner.spawn=false", "learner.wait_s=1")
    with pytest.raises(LearnerError) as stopped:
        trainer.run()
    assert str(stopped.value) == (f"No learner came up as 'dsrl_learner:{tmp_path.resolve()}' on a local Ray within learner.wait_s=1 s; "
                                  "start it there from this run's config, or set learner.spawn=true to let this side start it.")
    assert not ray.is_initialized() and ray_daemons() == []


def test_a_paused_robot_whose_learner_does_not_come_back_stops_at_its_deadline_and_leaves_nothing_running(tmp_path):
    no_ray_yet()
    trainer = make_trainer(tmp_path, "train.env_steps=60", "learner.mode=ray", "learner.on_loss=pause", "learner.wait_s=1")
    step = trainer.env.step

    def step_then_lose_the_learner_for_good(action):  # its node is gone: none can be started again either
        if trainer.episodes == 3 and trainer.link.cfg.spawn:
            trainer.link.cfg = dataclasses.replace(trainer.link.cfg, spawn=False)
            trainer.checkpointing.join()  # the checkpoint of episode 3, written beside this episode, is in place
            kill_learner(trainer.link.handle)
        return step(action)

    trainer.env.step = step_then_lose_the_learner_for_good
    held = []
    trainer.env.hold = lambda: held.append(("hold", trainer.episodes))
    trainer.env.resume = lambda: held.append(("resume", trainer.episodes))
    with pytest.raises(LearnerError) as stopped:
        trainer.run()
    assert str(stopped.value) == ("The learner was not back within learner.wait_s=1 s; the robot stopped in its start pose: start the "
                                  "learner, then run again with --resume to continue from the last checkpoint.")
    assert held == [("hold", 4)]
    # Episode 4 is recorded; its metrics record waits for a checkpoint, as after any stop before one.
    assert [r["train_episode"] for r in RecordedRun(tmp_path).records if r["kind"] in TRAINING_KINDS] == [1, 2, 3, 4]
    assert [r["episode"] for r in records(tmp_path) if r["kind"] == "episode"] == [1, 2, 3]
    assert not ray.is_initialized() and ray_daemons() == []


def test_ctrl_c_stops_the_arm_first_then_the_learner_checkpoints_and_nothing_of_ray_is_left(tmp_path):
    """A Ctrl-C in the robot's third training episode, with a simulated actor beside it: the arm holds before the
    learner's checkpoint is asked for; that checkpoint holds the two finished episodes; Ray and its actors are gone."""
    no_ray_yet()
    trainer = make_trainer(tmp_path, "train.env_steps=120", "learner.mode=ray", "actors.num=2")
    events = []
    step, hold, save = trainer.env.step, trainer.env.hold, trainer._save_checkpoint

    def step_or_interrupt(action):
        if trainer.episodes == 2:
            events.append("interrupt")
            raise KeyboardInterrupt
        return step(action)

    def spied_hold():
        events.append("hold")
        hold()

    def spied_save(records):
        events.append("checkpoint")
        return save(records)

    trainer.env.step, trainer.env.hold, trainer._save_checkpoint = step_or_interrupt, spied_hold, spied_save
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert events[events.index("interrupt"):] == ["interrupt", "hold", "checkpoint"]
    assert checkpoints.listed(tmp_path)[0].name == checkpoints.folder_name(2)
    assert [r["episode"] for r in records(tmp_path) if r["kind"] == "episode"] == [1, 2]
    assert not ray.is_initialized() and ray_daemons() == []
