"""Every recording is a LeRobot v3.0 dataset, whatever happened while it was written: a simulated
training run with cameras, a column that appears in a later episode, a crash in the middle of giving
earlier episodes that column, and the statistics LeRobot normalises with. The rules are LeRobot's
(tests/lerobot_rules.py); CI also loads such recordings with LeRobot itself (.ci/lerobot)."""

import json

import lerobot_rules
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import STATE

from dsrl_real.config import load_config
from dsrl_real.recording import RecordedRun, RunRecorder
from dsrl_real.train.trainer import DSRLTrainer

EXTERNAL = "policy.external=dsrl_real.policies.examples:scaled_noise_policy"


def episode(rec, seed, actions, **columns_at):
    """An episode of len(actions) steps and a final observation; columns_at[name] = {step: value}."""
    ep = rec.begin_episode("train", seed, "pull the drawer out")
    for t, action in enumerate(actions):
        extra = {name: values[t] for name, values in columns_at.items() if t in values}
        ep.add_step(proprio=np.full(7, t, np.float32), action=action, reward=float(t), **extra)
    ep.add_step(proprio=np.full(7, len(actions), np.float32))
    return ep.finish(success=False, terminated=False, truncated=True)


def test_a_simulated_training_run_with_cameras_follows_lerobots_rules(tmp_path):
    cfg = load_config(overrides=[*STATE, EXTERNAL, "train.wandb=disabled", "train.eval_episodes=1", "train.warm_start_episodes=1",
                                 "agent.hidden_dim=32", "agent.batch_size=16", "agent.utd=2", "task.max_steps=12",
                                 "train.env_steps=24", f"train.out_dir={tmp_path}",
                                 "cameras=[{name: front, view: third_person, width: 24, height: 24}, {name: wrist, view: wrist, width: 24, height: 24}]"])
    trainer = DSRLTrainer(cfg)
    trainer.run()
    trainer.close()
    info = lerobot_rules.check(tmp_path)
    assert info["features"]["noise"] == {"dtype": "float32", "shape": [4, 7], "names": None}
    assert info["features"]["observation.images.wrist"]["shape"] == [24, 24, 3]
    rows = pq.read_table(tmp_path / "data" / "chunk-000" / "file-001.parquet").to_pydict()
    assert rows["valid.noise"] == [True, False, False, False] * 3 + [False]  # a chunk's first step carries its noise
    assert np.shape(rows["noise"][0]) == (4, 7)


def test_a_column_that_appears_later_is_added_to_earlier_episodes_masked(tmp_path):
    actions = np.arange(3 * 7, dtype=np.float32).reshape(3, 7) / 100
    with RunRecorder(tmp_path, [], 5.0) as rec:
        episode(rec, 0, actions)
        before = pq.read_table(tmp_path / "data" / "chunk-000" / "file-000.parquet")
        episode(rec, 1, actions, **{"progress": {1: {"robometer": 0.5}}})
    after = pq.read_table(tmp_path / "data" / "chunk-000" / "file-000.parquet")
    assert after.select(before.column_names).equals(before)  # every value it had, unchanged
    assert after.column("progress.robometer").to_pylist() == [0.0] * 4 and after.column("valid.progress.robometer").to_pylist() == [False] * 4
    lerobot_rules.check(tmp_path)
    assert RecordedRun(tmp_path).table(1).column("progress.robometer").to_pylist() == [None, 0.5, None, None]


def test_a_crash_while_earlier_episodes_gain_a_column_is_finished_when_the_run_is_reopened(tmp_path, monkeypatch):
    import dsrl_real.recording.writer as writer

    actions = np.ones((2, 7), np.float32)
    with RunRecorder(tmp_path, [], 5.0) as rec:
        for seed in range(3):
            episode(rec, seed, actions * seed)
    original, calls = writer.atomic_file, []

    def disk_fails_on_the_second_rewrite(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("Input/output error")
        return original(path, *args, **kwargs)

    rec = RunRecorder(tmp_path, [], 5.0)
    monkeypatch.setattr(writer, "atomic_file", disk_fails_on_the_second_rewrite)
    with pytest.raises(OSError, match="Input/output error"):
        episode(rec, 3, actions * 3, stage={0: 1})  # `stage` is new: the three earlier tables gain it
    monkeypatch.undo()
    rec._release()  # the process dies here
    assert (tmp_path / "meta" / ".features_migration.json").is_file()
    with RunRecorder(tmp_path, [], 5.0) as again:
        assert [r["partial"] for r in again.records] == [False] * 4  # the fourth had finished: sealed complete
    assert not (tmp_path / "meta" / ".features_migration.json").exists()
    lerobot_rules.check(tmp_path)
    run = RecordedRun(tmp_path)
    for seed in range(4):
        np.testing.assert_array_equal(run.episode(seed).actions, actions * seed)
    assert run.table(3).column("stage").to_pylist() == [1, None, None]


def test_stats_json_is_over_every_row_that_has_a_value(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [rng.normal(size=(n, 7)).astype(np.float32) for n in (5, 9, 2)]
    with RunRecorder(tmp_path, [], 5.0) as rec:
        for seed, actions in enumerate(episodes):
            episode(rec, seed, actions)
    stats = json.loads((tmp_path / "meta" / "stats.json").read_text())["action"]
    every = np.concatenate(episodes).astype(np.float64)  # not the final observations' rows, which have no action
    assert stats["count"] == [len(every)]
    np.testing.assert_allclose(stats["mean"], every.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], every.std(0), rtol=1e-6)
    np.testing.assert_array_equal(stats["min"], every.min(0))
    np.testing.assert_array_equal(stats["max"], every.max(0))
    proprio = json.loads((tmp_path / "meta" / "stats.json").read_text())["observation.state"]
    assert proprio["count"] == [5 + 9 + 2 + 3]


def rewrite(path, change):
    table = pq.read_table(path)
    pq.write_table(change(table), path)


@pytest.mark.parametrize("break_it", ["flat noise", "null action", "undeclared column", "index offset"])
def test_the_rules_catch_what_broke_lerobot(tmp_path, break_it):
    """Each of these made LeRobot 0.6.1 fail to load, or load wrong values (issue 19)."""
    actions = np.ones((4, 7), np.float32)
    with RunRecorder(tmp_path, [], 5.0) as rec:
        episode(rec, 0, actions, noise={0: np.ones((4, 7), np.float32)})
    lerobot_rules.check(tmp_path)
    path = tmp_path / "data" / "chunk-000" / "file-000.parquet"
    changes = {
        "flat noise": lambda t: t.set_column(t.schema.get_field_index("noise"), "noise",
                                              pa.array([np.zeros(28, np.float32)] * t.num_rows, pa.list_(pa.float32()))),
        "null action": lambda t: t.set_column(t.schema.get_field_index("action"), "action",
                                               pa.array([list(range(7))] * (t.num_rows - 1) + [None], pa.list_(pa.float32(), 7))),
        "undeclared column": lambda t: t.append_column("wall_time", pa.array(np.zeros(t.num_rows))),
        "index offset": lambda t: t.set_column(t.schema.get_field_index("index"), "index", pa.array(np.arange(1, t.num_rows + 1))),
    }
    rewrite(path, changes[break_it])
    with pytest.raises(AssertionError):
        lerobot_rules.check(tmp_path)


def test_camera_stats_are_per_channel_over_the_frames_recorded(tmp_path):
    frames = [np.stack([np.full((20, 30), 10 * t), np.full((20, 30), 100), np.full((20, 30), 250 - t)], -1).astype(np.uint8)
              for t in range(6)]
    with RunRecorder(tmp_path, ["front"], 5.0) as rec:
        ep = rec.begin_episode("eval", 0, "x")
        for frame in frames:
            ep.add_frames({"front": frame})
            ep.add_step(proprio=np.zeros(7, np.float32))
        ep.finish(False, False, True)
    stats = json.loads((tmp_path / "meta" / "stats.json").read_text())["observation.images.front"]
    pixels = np.stack(frames).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.ravel(stats["mean"]), pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(stats["max"]), pixels.max(0), rtol=1e-9)
    assert np.shape(stats["std"]) == (3, 1, 1) and stats["count"] == [6]
