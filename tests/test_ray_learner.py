"""learner.mode=ray: the learner as a Ray actor (train/remote_learner.py, train/learner_link.py), on a small local Ray.

Each test stays under about 30 s on two cores: tiny agents, 12-step episodes, one Ray for the tests that
share it (`local_ray`), and a Ray of their own for the tests that prove nothing of it is left behind."""

from __future__ import annotations

import json
import os
import sys
import threading

import jax
import numpy as np
import psutil
import pytest
from test_train import make_trainer

from dsrl_real.errors import MissingExtraError
from dsrl_real.train import checkpoints
from dsrl_real.train.learner_link import LearnerError, LearnerLink, import_ray
from dsrl_real.train.remote_learner import LEARNER_FILES, RemoteLearner

# The tests that start a Ray run on one pytest-xdist worker, one after another (README's `--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("ray")

ray = pytest.importorskip("ray")

RAY_ONLY = ("gradient_steps_per_env_step", "policy_lag", "robot_idle_fraction", "actors", "learner_steps_per_s")  # what ray mode adds
RAY_DAEMONS = ("raylet", "gcs_server")


@pytest.fixture(scope="module", autouse=True)
def _no_ray_after_the_module():
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray():
    """A small local Ray shared by the tests that do not start their own (the trainer then leaves it running)."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield


def ray_daemons() -> list[str]:
    """Ray's daemons among this test process's descendants."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if any(name in " ".join([child.name(), *child.cmdline()]) for name in RAY_DAEMONS):
                found.append(f"{child.pid} {child.name()}")
        except psutil.NoSuchProcess:
            pass
    return found


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def comparable(record: dict) -> dict:
    """A metrics record without what differs between two runs of the same seed (the clock) or between the modes."""
    return {k: v for k, v in record.items() if k not in ("time", "reward_wait_s", "robot_wait_s", "robot_wall_s", *RAY_ONLY)}


def test_a_lockstep_ray_run_equals_an_inline_run(tmp_path, local_ray):
    inline = make_trainer(tmp_path / "inline", "train.env_steps=36")
    inline_result = inline.run()
    lockstep = make_trainer(tmp_path / "ray", "train.env_steps=36", "learner.mode=ray", "learner.max_policy_lag=0")
    assert lockstep.run() == inline_result
    jax.tree_util.tree_map(np.testing.assert_array_equal, inline.agent.state_dict(), lockstep.agent.state_dict())
    ray_records, inline_records = [r for r in records(tmp_path / "ray") if r["kind"] != "learner"], records(tmp_path / "inline")
    assert [r["kind"] for r in records(tmp_path / "ray")].count("learner") == 1  # ray mode's totals, at the end
    assert [comparable(r) for r in ray_records] == [comparable(r) for r in inline_records]
    episodes = [r for r in ray_records if r["kind"] == "episode"]
    assert [r["policy_lag"] for r in episodes] == [0, 0, 0]
    # Two warm-start episodes, then the 6 transitions (1 update each) and 3 chunk steps, of 2 gradient steps (agent.utd),
    # over 12 env steps per episode.
    assert [r["gradient_steps_per_env_step"] for r in episodes] == [0.0, 1.0, 0.5]
    assert all(0 <= r["robot_idle_fraction"] <= 1 for r in episodes)
    # The checkpoint the learner wrote resumes into the same agent.
    resumed = make_trainer(tmp_path / "ray", "train.env_steps=36")
    assert resumed.restore() and resumed.buffer.num_episodes_started == 3
    jax.tree_util.tree_map(np.testing.assert_array_equal, inline.agent.state_dict(), resumed.agent.state_dict())


def test_a_ray_run_resumed_by_its_learner_continues_exactly(tmp_path, local_ray):
    straight = make_trainer(tmp_path / "inline", "train.env_steps=48")
    straight.run()
    make_trainer(tmp_path / "ray", "train.env_steps=24", "learner.mode=ray").run()  # stops (as if killed) after its checkpoint
    resumed = make_trainer(tmp_path / "ray", "train.env_steps=48", "learner.mode=ray")
    resumed.run(resume=True)  # the learner loads the agent, its buffer and the sampling stream
    assert (resumed.episodes, resumed.env_steps) == (straight.episodes, straight.env_steps) == (4, 48)
    jax.tree_util.tree_map(np.testing.assert_array_equal, straight.agent.state_dict(), resumed.agent.state_dict())
    # The same episodes and learner metrics (the recording's indices differ: the first part's final evaluation was recorded).
    episodes = [[{k: v for k, v in comparable(r).items() if k != "record"} for r in records(tmp_path / run) if r["kind"] == "episode"]
                for run in ("inline", "ray")]
    assert episodes[0] == episodes[1] and len(episodes[0]) == 4


def test_a_learner_built_for_another_config_is_refused_in_one_sentence(tmp_path, local_ray):
    running = make_trainer(tmp_path, "agent.hidden_dim=32", "learner.mode=ray")
    link = LearnerLink(running.cfg.learner, running.learner_spec())  # the learner of this run, started with hidden_dim 32
    try:
        robot = make_trainer(tmp_path, "agent.hidden_dim=64", "learner.mode=ray")
        with pytest.raises(LearnerError) as refused:
            robot.run()
        assert str(refused.value) == ("The learner was built for agent.hidden_dim=32, but this robot's side has 64; start the learner "
                                      "from the robot's config (or point learner.address at this run's learner) and connect again.")
        assert robot.link is None and link.stats()["episodes"] == 0  # the refusal left the running learner alone
    finally:
        link.close()
    assert not ray.util.list_named_actors()  # the learner this test started is gone (close() waits for that)


def random_episode(trainer, rng, T: int = 3) -> dict:
    """A `T`-chunk-step episode as the learner takes it (ReplayBuffer.add_episode's arguments), for `trainer`'s agent."""
    dim, shape = trainer.agent.obs_dim, trainer.agent.noise_shape
    return dict(observations={"proprio": rng.normal(size=(T + 1, 7)).astype(np.float32)},
                features=rng.normal(size=(T + 1, dim)).astype(np.float32), noise=rng.normal(size=(T, *shape)).astype(np.float32),
                chunks=rng.normal(size=(T, *shape)).astype(np.float32), rewards=rng.normal(size=T).astype(np.float32),
                terminated=False, truncated=True)


def test_a_checkpoint_sends_only_the_replay_segments_the_robots_previous_checkpoint_lacks(tmp_path, local_ray, monkeypatch):
    """Segments of one episode each (4 time indices): the learner sends the new one; the robot links the others from
    its previous checkpoint (the same file), and the run resumes from them."""
    sent, checkpoint = [], LearnerLink.checkpoint

    def spied(self, act_stream, have, timeout_s):
        snap = checkpoint(self, act_stream, have, timeout_s)
        sent.append((list(have), sorted(n for n in snap["files"] if n.startswith("replay/segment_")), snap["linked"]))
        return snap

    monkeypatch.setattr(LearnerLink, "checkpoint", spied)
    trainer = make_trainer(tmp_path, "train.env_steps=36", "learner.mode=ray", "learner.max_policy_lag=0",
                           "train.buffer_segment_slots=4", "train.record=false")
    trainer.run()
    seg = ["segment_000000_g000000000004.npz", "segment_000001_g000000000008.npz", "segment_000002_g000000000012.npz"]
    assert sent == [([], [f"replay/{seg[0]}"], []),
                    ([seg[0]], [f"replay/{seg[1]}"], [f"replay/{seg[0]}"]),
                    (seg[:2], [f"replay/{seg[2]}"], [f"replay/{seg[0]}", f"replay/{seg[1]}"])]
    two, three = (tmp_path / "checkpoints" / checkpoints.folder_name(n) / "replay" for n in (2, 3))
    assert [(three / name).stat().st_ino == (two / name).stat().st_ino for name in seg[:2]] == [True, True]
    assert sorted(p.name for p in three.iterdir()) == ["index.json", *seg]
    assert all(checkpoints.problem(folder.parent) is None for folder in (two, three))
    resumed = make_trainer(tmp_path, "train.env_steps=36", "train.buffer_segment_slots=4", "train.record=false")
    assert resumed.restore() and resumed.buffer.num_episodes_started == 3 and resumed.buffer.segments() == [
        (0, 4, 4), (4, 4, 8), (8, 4, 12)]


def test_an_episode_sent_twice_is_stored_and_counted_once(tmp_path, local_ray):
    trainer = make_trainer(tmp_path, "learner.mode=ray")
    link = LearnerLink(trainer.cfg.learner, trainer.learner_spec())
    T, episode = 3, random_episode(trainer, np.random.default_rng(0))
    try:
        first = link.add_episode(1, 0, episode)
        again = link.add_episode(1, 0, episode)  # a retry after a lost acknowledgement, say
        other = link.add_episode(1, 0, episode, actor_id="robot-2")  # the same seq from another actor is another episode
        assert (first, again, other) == ({"stored": True, "index": 1, "episodes": 1}, {"stored": False, "index": 1, "episodes": 1},
                                         {"stored": True, "index": 2, "episodes": 2})
        stats = link.stats()
        assert (stats["episodes"], stats["transitions"]) == (2, 2 * T)
    finally:
        link.close()


def without_act_rng(state: dict) -> dict:
    """An agent's state_dict without the acting stream (the robot's, which a learner's checkpoint carries)."""
    return {**state, "state": {k: v for k, v in state["state"].items() if k != "act_rng"}}


def test_the_learners_checkpoint_travels_as_bytes_and_resumes_a_fresh_learner_and_an_inline_trainer(tmp_path):
    """No shared filesystem: RemoteLearner (a plain class, no Ray here) is given no folder. Its checkpoint is its
    files' bytes; written into a checkpoint folder on the robot's side they resume an inline trainer, and sent back
    as bytes they resume a fresh learner, and each continues exactly as the learner that wrote them."""
    robot = make_trainer(tmp_path / "run")
    spec, rng = robot.learner_spec(), np.random.default_rng(0)
    episodes = [random_episode(robot, rng) for _ in range(4)]
    learner, fresh, broken = RemoteLearner(spec), RemoteLearner(spec), RemoteLearner(spec)
    try:
        for seq, episode in enumerate(episodes[:3], 1):
            learner.add_episode(spec.run_id, "robot", seq, 0, episode)
        learner.state()  # its owed gradient work done: 6 updates when the warm start ends, then 3
        snap = learner.checkpoint(robot.agent.act_stream)
        segment = "replay/segment_000000_g000000000012.npz"  # 3 episodes of 4 time indices
        assert (sorted(snap["files"]), snap["linked"], snap["episodes"], snap["version"]) == (
            sorted([*LEARNER_FILES, "replay/index.json", segment]), [], 3, 3)
        assert all(isinstance(data, bytes) for data in snap["files"].values())

        def write_files(folder):  # what the robot side writes in checkpoints.save
            for name, data in snap["files"].items():
                (folder / name).parent.mkdir(exist_ok=True)
                (folder / name).write_bytes(data)
            counters = {"episodes": 3, "env_steps": 36, "next_eval": robot.next_eval, "sample_rng": snap["sample_rng"],
                        "warm_rng": robot.warm_rng.bit_generator.state, "records": []}
            (folder / "counters.json").write_text(json.dumps(counters))

        folder = checkpoints.save(robot.out_dir, 3, write_files)
        assert robot.restore() and (robot.episodes, robot.buffer.num_episodes_started) == (3, 3)
        expected = learner.state()
        expected["state"]["act_rng"] = robot.agent.act_stream
        jax.tree_util.tree_map(np.testing.assert_array_equal, robot.agent.state_dict(), expected)
        files = {name: (folder / name).read_bytes() for name in [*LEARNER_FILES, "replay/index.json", segment]}
        assert fresh.restore(files, 3, snap["sample_rng"], str(folder)) == {"problem": None, "version": 3, "gradient_steps": 18}
        assert fresh.acknowledged("robot") == [1, 2, 3]
        # All three continue alike: episode 4 owes 3 updates (of agent.utd=2 gradient steps each).
        for side in (learner, fresh):
            side.add_episode(spec.run_id, "robot", 4, 3, episodes[3])
        robot.buffer.add_episode(**episodes[3])
        robot._learn(3)
        after = without_act_rng(learner.state())
        for other in (fresh.state(), robot.agent.state_dict()):
            jax.tree_util.tree_map(np.testing.assert_array_equal, without_act_rng(other), after)
        assert fresh.stats()["gradient_steps"] == learner.stats()["gradient_steps"] == int(robot.agent.step) == 24
        # A file that cannot be loaded is named in the robot's folder, never in the learner's temporary copy.
        truncated = {**files, segment: files[segment][:100]}
        assert broken.restore(truncated, 3, snap["sample_rng"], str(folder))["problem"] == (
            f"episode_000003/replay cannot be loaded (ReplayFileError: The replay buffer segment '{folder / segment}' is "
            "truncated or corrupt (BadZipFile))")
    finally:
        for side in (learner, fresh, broken):
            side.close()


def test_the_checkpoint_is_written_beside_the_next_episode_and_its_records_logged_once_it_is_safe(tmp_path, local_ray,
                                                                                                   monkeypatch):
    """The robot waits at the boundary for the acknowledgement and the parameters, not for the checkpoint: the one
    after episode 1, held back until the test lets it go at episode 2's first step, is still being written while
    episode 2 runs. Its counters are those of the moment it was asked for, and episode 1's metrics record is
    logged only once it is written."""
    trainer = make_trainer(tmp_path, "train.env_steps=24", "learner.mode=ray")
    started, release, seen, asked = threading.Event(), threading.Event(), [], []
    write = LearnerLink.write_checkpoint

    def held_back(link, folder, act_stream):
        if folder.name.endswith(checkpoints.folder_name(1)):  # its staging folder
            started.set()
            seen.append(("let go", release.wait(timeout=60)))
        return write(link, folder, act_stream)

    monkeypatch.setattr(LearnerLink, "write_checkpoint", held_back)
    reset, step = trainer.env.reset, trainer.env.step

    def reset_noting_the_moment(**kwargs):  # the checkpoint after episode 1 is asked for beside this reset
        if trainer.episodes == 1:
            asked.append(trainer.warm_rng.bit_generator.state)
        return reset(**kwargs)

    def step_while_checkpointing(action):
        if trainer.episodes == 1 and not release.is_set():  # episode 2's first step (after its first warm-start draw)
            seen.append(("episode 2 runs", started.wait(timeout=60), [r["episode"] for r in records(tmp_path) if r["kind"] == "episode"],
                         checkpoints.listed(tmp_path), trainer.warm_rng.bit_generator.state != asked[0]))
            release.set()
        return step(action)

    trainer.env.reset, trainer.env.step = reset_noting_the_moment, step_while_checkpointing
    trainer.run()
    # Episode 2 began while checkpoint 1 was being written, with no episode logged and no checkpoint in place yet.
    assert seen == [("episode 2 runs", True, [], [], True), ("let go", True)]
    assert [r["episode"] for r in records(tmp_path) if r["kind"] == "episode"] == [1, 2]
    assert [f.name for f in checkpoints.listed(tmp_path)] == [checkpoints.folder_name(2), checkpoints.folder_name(1)]
    counters = json.loads((tmp_path / "checkpoints" / checkpoints.folder_name(1) / "counters.json").read_text())
    assert (counters["episodes"], counters["env_steps"], counters["warm_rng"]) == (1, 12, asked[0])
    assert [r["episode"] for r in counters["records"]] == [1]


def no_ray_yet():
    if ray.is_initialized():
        ray.shutdown()
    assert ray_daemons() == []


def test_no_ray_process_is_left_after_a_run(tmp_path):
    no_ray_yet()
    trainer = make_trainer(tmp_path, "train.env_steps=36", "learner.mode=ray", "learner.max_policy_lag=1")
    trainer.run()  # starts its own Ray (learner.address ""), and shuts it down
    assert not ray.is_initialized() and ray_daemons() == []
    episodes = [r for r in records(tmp_path) if r["kind"] == "episode"]
    assert len(episodes) == 3 and all(r["policy_lag"] <= 1 for r in episodes)


def test_no_ray_process_is_left_after_a_failure(tmp_path):
    no_ray_yet()
    trainer = make_trainer(tmp_path, "train.env_steps=36", "learner.mode=ray")
    reset, calls = trainer.env.reset, []

    def reset_then_fail(**kwargs):
        calls.append(kwargs)
        if len(calls) == 4:  # the second training episode's (after the two of the base policy's evaluation)
            raise RuntimeError("the scene cannot be reset")
        return reset(**kwargs)

    trainer.env.reset = reset_then_fail
    with pytest.raises(RuntimeError, match="the scene cannot be reset"):
        trainer.run()
    assert not ray.is_initialized() and ray_daemons() == []
    assert [r["episode"] for r in records(tmp_path) if r["kind"] == "episode"] == [1]  # the finished episode is kept, once


def test_ray_mode_without_ray_installed_is_one_sentence_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingExtraError) as missing:
        import_ray()
    assert str(missing.value) == 'learner.mode=ray needs Ray, which is not installed: pip install -e ".[ray]" (or set learner.mode=inline).'


def test_a_checkpoint_waits_for_the_update_in_flight_not_for_all_the_work_owed(tmp_path):
    """The worker takes the agent's lock again the moment an update ends; a checkpoint asked for meanwhile goes
    next. Each update here waits for the test's go, so the test knows exactly how many ran when the snapshot was
    taken (a Python lock alone let the worker keep it through every update owed: 45 s at the paper's sizes)."""
    robot = make_trainer(tmp_path / "run", "train.updates_per_chunk=20")
    spec, rng = robot.learner_spec(), np.random.default_rng(0)
    learner = RemoteLearner(spec)
    update, started, go = learner.agent.update, threading.Semaphore(0), threading.Semaphore(0)

    def paced_update(batch, **kwargs):
        started.release()
        go.acquire()
        return update(batch, **kwargs)

    learner.agent.update = paced_update
    try:
        for seq in (1, 2, 3):  # the third, after the two warm-start episodes, owes 3 chunk steps x 20 updates
            learner.add_episode(spec.run_id, "robot", seq, 0, random_episode(robot, rng))
        owed = learner.stats()["owed_updates"]
        assert owed > 2
        started.acquire()  # the first update is in flight, holding the agent's lock
        snapshot = threading.Thread(target=lambda: setattr(learner, "snap", learner.checkpoint(robot.agent.act_stream)))
        snapshot.start()
        while not learner._turns_waiting:  # the checkpoint is waiting for the lock
            threading.Event().wait(0.001)
        go.release()  # the update in flight ends; the worker must now let the checkpoint go first
        snapshot.join(timeout=60)
        assert not snapshot.is_alive()
        books = json.loads(learner.snap["files"]["learner.json"])
        assert sum(u for _, u in books["owed"]) == owed - 1  # exactly the one update in flight ran before it
    finally:
        for _ in range(owed):
            go.release()
        learner.close()
