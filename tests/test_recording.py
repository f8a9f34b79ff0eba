"""Recording every episode: a LeRobot v3.0 dataset read back without our code, crash safety, reuse
for replay and pretraining. (That the released LeRobot itself loads it: tests/lerobot/, run by .ci/lerobot.)"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from conftest import STATE

from dsrl_real.config import load_config
from dsrl_real.envs.make import make_sim_env
from dsrl_real.envs.robot_env import image_key
from dsrl_real.policies.pretrain import chunk_dataset
from dsrl_real.recording import RecordedRun, RecordingError, RunRecorder, load_episodes
from dsrl_real.recording.rows import step_columns
from dsrl_real.rewards.base import SimTruthBackend
from dsrl_real.rollout import random_policy, scripted_expert
from dsrl_real.rollout.demos import collect_demos
from dsrl_real.rollout.record import record_episode

CAMERAS = ["third_person", "wrist"]


def read_info(run_dir):
    return json.loads((run_dir / "meta" / "info.json").read_text())


def lerobot_path(run_dir, template_key, index, camera=None):
    """A file path the way LeRobot v3.0 builds it (lerobot/datasets/dataset_metadata.py: get_data_file_path,
    get_video_file_path): the template in meta/info.json, filled from the episode's row in meta/episodes."""
    info = read_info(run_dir)
    row = pd.read_parquet(run_dir / "meta/episodes/chunk-000/file-000.parquet").iloc[index]
    assert row["episode_index"] == index  # LeRobot indexes the rows by position
    prefix = "data" if template_key == "data_path" else f"videos/observation.images.{camera}"
    return run_dir / info[template_key].format(chunk_index=row[f"{prefix}/chunk_index"], file_index=row[f"{prefix}/file_index"],
                                               video_key=f"observation.images.{camera}")


def read_records(run_dir):
    return pd.read_json(run_dir / "meta" / "dsrl_episodes.jsonl", lines=True, precise_float=True)


def test_a_simulated_run_reads_back_with_pandas_and_an_mp4_reader(tmp_path):
    env = make_sim_env(cameras=CAMERAS, image_size=32, seed=0, max_steps=12)
    played = []  # (actions, frames per camera, labels) of each episode, as handed to the recorder
    with RunRecorder(tmp_path, CAMERAS, env.control_hz, {"robot_type": "wx250s"}) as rec:
        for seed, kind in enumerate(["warm_start", "train", "eval"]):
            act = random_policy(env, seed)
            obs, info = env.reset(seed=seed)
            ep = rec.begin_episode(kind, seed, env.task.instruction)
            actions, frames = [], {c: [obs[image_key(c)]] for c in CAMERAS}
            ep.add_frames({c: obs[image_key(c)] for c in CAMERAS})
            done = False
            while not done:
                action = act(obs)
                next_obs, reward, terminated, truncated, next_info = env.step(action)
                ep.add_step(**step_columns(obs, info, action=action, reward=reward, step_info=next_info))
                actions.append(np.asarray(action, np.float32))
                obs, info, done = next_obs, next_info, terminated or truncated
                ep.add_frames({c: obs[image_key(c)] for c in CAMERAS})
                for c in CAMERAS:
                    frames[c].append(obs[image_key(c)])
            ep.add_step(**step_columns(obs, info))
            labels = {"human": {"score": 1 + seed, "success": False, "reward": 1 / 3, "raw": "s"},
                      "roboreward": {"score": None, "success": False, "reward": 0.0, "valid": False, "raw": "ANSWER: maybe"}}
            ep.finish(success=False, terminated=terminated, truncated=truncated, labels=labels)
            played.append((np.stack(actions), {c: np.stack(f) for c, f in frames.items()}, labels))

    info = read_info(tmp_path)
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["total_tasks"] == 1
    assert info["total_frames"] == sum(len(actions) + 1 for actions, _, _ in played)
    assert info["features"]["action"] == {"dtype": "float32", "shape": [7], "names": None}
    assert info["features"]["valid.action"] == {"dtype": "bool", "shape": [1], "names": None}
    assert info["features"]["observation.images.wrist"]["shape"] == [32, 32, 3]
    episodes = read_records(tmp_path)
    assert episodes["kind"].tolist() == ["warm_start", "train", "eval"] and not episodes["partial"].any()
    lerobot_episodes = pd.read_parquet(tmp_path / "meta/episodes/chunk-000/file-000.parquet")
    assert lerobot_episodes["dsrl/kind"].tolist() == ["warm_start", "train", "eval"]
    tasks = pd.read_parquet(tmp_path / "meta" / "tasks.parquet")
    assert tasks.index.name == "task" and tasks.index.tolist() == [env.task.instruction] and tasks["task_index"].tolist() == [0]
    stats = json.loads((tmp_path / "meta" / "stats.json").read_text())
    assert np.shape(stats["observation.images.wrist"]["mean"]) == (3, 1, 1) and np.shape(stats["action"]["q50"]) == (7,)
    assert stats["action"]["count"] == [sum(len(actions) for actions, _, _ in played)]  # rows with an action only
    total = 0
    for index, (actions, frames, labels) in enumerate(played):
        table = pd.read_parquet(lerobot_path(tmp_path, "data_path", index))
        assert len(table) == len(actions) + 1  # the final observation's row has no action: zeros, masked
        assert table["valid.action"].tolist() == [True] * len(actions) + [False]
        np.testing.assert_array_equal(np.stack(table["action"]), np.concatenate([actions, np.zeros((1, 7), np.float32)]))  # bit-exact
        assert table["action"].iloc[0].dtype == np.float32 and not table.isna().any().any()
        assert table["frame_index"].tolist() == list(range(len(table)))
        assert table["index"].tolist() == list(range(total, total + len(table)))
        np.testing.assert_array_equal(table["timestamp"], (np.arange(len(table)) / env.control_hz).astype(np.float32))
        assert lerobot_episodes["dataset_from_index"][index] == total
        total += len(table)
        assert episodes["labels"][index] == {name: {"valid": True, **label} for name, label in labels.items()}
        assert episodes["length"][index] == len(table) == lerobot_episodes["length"][index]
        for camera in CAMERAS:
            video = iio.imread(lerobot_path(tmp_path, "video_path", index, camera), plugin="pyav")
            assert video.shape == frames[camera].shape  # one frame per row
            error = np.abs(video.astype(float) - frames[camera]).mean()
            assert error < 8, f"{camera} of episode {index} decodes {error:.1f} grey levels off"  # lossy, yet the same pictures
    # Our reader gives the same, plus the arrays to seed a replay buffer.
    ep = RecordedRun(tmp_path).episode(1, images=True)
    np.testing.assert_array_equal(ep.actions, played[1][0])
    assert ep.observations["proprio"].shape == (len(played[1][0]) + 1, 7) and ep.noise is None
    assert ep.observations["wrist_image"].shape == played[1][1]["wrist"].shape
    assert ep.kind == "train" and ep.truncated and not ep.terminated


def test_noise_and_columns_that_appear_mid_episode_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    noise = [rng.standard_normal((4, 7)).astype(np.float32) for _ in range(2)]
    actions = rng.uniform(-0.05, 0.05, (6, 7)).astype(np.float32)
    with RunRecorder(tmp_path, [], 5.0) as rec:
        ep = rec.begin_episode("train", 7, "pull the drawer out")
        for t, action in enumerate(actions):
            progress = {"robometer": 0.1 * t} if t >= 3 else None  # the backend's first answer comes late
            ep.add_step(proprio=np.full(7, t, np.float32), action=action, reward=float(t == 5),
                        noise=noise[t // 4] if t % 4 == 0 else None, progress=progress, human_key="SUCCESS" if t == 5 else None)
        ep.add_step(proprio=np.full(7, 6, np.float32))
        ep.finish(success=True, terminated=True, truncated=False, labels={})
    run = RecordedRun(tmp_path)
    ep = run.episode(0)
    np.testing.assert_array_equal(ep.actions, actions)
    np.testing.assert_array_equal(ep.noise[0], noise[0])
    np.testing.assert_array_equal(ep.noise[4], noise[1])
    assert np.isnan(ep.noise[[1, 2, 3, 5]]).all()
    table = run.table(0).to_pandas()
    assert table["progress.robometer"].isna().tolist() == [True] * 3 + [False] * 3 + [True]
    assert table["progress.robometer"][4] == pytest.approx(0.4)
    assert [None if pd.isna(key) else key for key in table["human_key"]] == [None] * 5 + ["SUCCESS", None]
    # Regrouped into the trainer's chunk steps: chunks start where noise was recorded.
    steps = ep.chunk_steps(4)
    np.testing.assert_array_equal(steps["noise"], np.stack(noise))
    np.testing.assert_array_equal(steps["chunks"][0], actions[:4])
    np.testing.assert_array_equal(steps["chunks"][1], actions[[4, 5, 5, 5]])  # cut short by success: last action repeated
    np.testing.assert_array_equal(steps["rewards"], [0.0, 1.0])
    np.testing.assert_array_equal(steps["observations"]["proprio"][:, 0], [0, 4, 6])  # o_0, o_4 and the final o_6
    assert steps["terminated"] and not steps["truncated"]


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from dsrl_real.recording import RunRecorder

    def frame(t):
        return np.full((32, 32, 3), (t * 9) % 256, np.uint8)

    rec = RunRecorder(sys.argv[1], ["third_person"], 5.0)
    for e in range(2):
        ep = rec.begin_episode("train", e, "pull the drawer out")
        for t in range(8):
            ep.add_frames({"third_person": frame(t)})
            ep.add_step(action=np.full(7, e + t / 100, np.float32), reward=0.0)
        ep.finish(success=e == 1, terminated=e == 1, truncated=e == 0, labels={"human": {"success": e == 1}})
    ep = rec.begin_episode("eval", 2, "pull the drawer out")
    for t in range(12):
        ep.add_frames({"third_person": frame(t)})
        ep.add_step(action=np.full(7, 2 + t / 100, np.float32), reward=0.0)
    ep.flush()
    print("ready", flush=True)
    sys.stdin.read()  # wait here until killed
""")


def test_a_run_killed_mid_episode_keeps_every_earlier_episode_and_the_last_as_partial(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        sealed = {p: p.read_bytes() for p in tmp_path.glob("data/*/*.parquet")} | {p: p.read_bytes() for p in tmp_path.glob("videos/*/*/*.mp4")}
        assert len(sealed) == 4  # two tables, two videos
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    # Before anything repairs it: two complete episodes, the third readable up to its last step.
    run = RecordedRun(tmp_path)
    assert [r["partial"] for r in run.records] == [False, False, True] and run.records[2]["in_progress"]
    for e in range(2):
        np.testing.assert_array_equal(run.episode(e).actions, np.stack([np.full(7, e + t / 100, np.float32) for t in range(8)]))
    np.testing.assert_array_equal(run.episode(2).actions, np.stack([np.full(7, 2 + t / 100, np.float32) for t in range(12)]))
    # The next recorder on this run seals it as partial, touching nothing earlier.
    with RunRecorder(tmp_path, ["third_person"], 5.0) as rec:
        record = rec.records[2]
        assert record["partial"] and record["interruption"] == "crashed" and record["success"] is None
        assert record["length"] == 12 and record["kind"] == "eval" and record["seed"] == 2
        # Every completed one-second fragment of video is kept; frames lost with the rest are padded
        # (LeRobot has one frame per row).
        assert record["frames"]["third_person"] == 12 and 0 <= record.get("padded_frames", {}).get("third_person", 0) <= 5
        ep = rec.begin_episode("eval", 3, "pull the drawer out")
        assert ep.index == 3
        ep.add_step(action=np.zeros(7, np.float32))
        ep.finish(success=False, terminated=False, truncated=True, labels={})
    assert {p: p.read_bytes() for p in sealed} == sealed
    assert not list((tmp_path / ".in_progress").iterdir())
    table = pd.read_parquet(lerobot_path(tmp_path, "data_path", 2))
    assert len(table) == 12 and table["index"].iloc[0] == 16
    video = iio.imread(lerobot_path(tmp_path, "video_path", 2, "third_person"), plugin="pyav")
    assert len(video) == 12
    assert abs(int(video[3].mean()) - 27) <= 3  # frame 3 is grey level 27
    info = read_info(tmp_path)
    assert info["total_episodes"] == 4 and info["total_frames"] == 8 + 8 + 12 + 1


def test_an_exception_mid_episode_seals_it_as_partial_and_recording_goes_on(tmp_path):
    with RunRecorder(tmp_path, [], 5.0) as rec:
        with pytest.raises(KeyboardInterrupt):
            with rec.begin_episode("train", 0, "pull the drawer out") as ep:
                ep.add_step(action=np.ones(7, np.float32))
                raise KeyboardInterrupt
        assert rec.records[0]["partial"] and rec.records[0]["interruption"] == "KeyboardInterrupt"
        ep = rec.begin_episode("train", 1, "pull the drawer out")
        ep.add_step(action=np.zeros(7, np.float32))
        # Closing the recorder mid-episode seals the episode too.
    records = RecordedRun(tmp_path).records
    assert [r["partial"] for r in records] == [True, True] and records[0]["steps"] == 1
    assert records[1]["interruption"] == "the recorder was closed mid-episode"


def test_reopening_a_run_continues_it_and_refuses_other_cameras_or_a_second_writer(tmp_path):
    with RunRecorder(tmp_path, ["wrist"], 5.0) as rec:
        ep = rec.begin_episode("demo", 0, "pull the drawer out")
        ep.add_step(action=np.zeros(7, np.float32))
        ep.finish(True, True, False, {})
        with pytest.raises(RecordingError, match=r"is in use by a recorder \(pid \d+ on .*\); stop it first or choose another run directory\.$"):
            RunRecorder(tmp_path, ["wrist"], 5.0)
    with pytest.raises(RecordingError, match=r"was recorded with cameras \['wrist'\] at 5.0 Hz"):
        RunRecorder(tmp_path, ["third_person"], 5.0)
    with RunRecorder(tmp_path, ["wrist"], 5.0) as rec:
        ep = rec.begin_episode("demo", 1, "pull the drawer out")
        assert ep.index == 1
        ep.add_step(action=np.zeros(7, np.float32))
        ep.finish(True, True, False, {})
        rec.update_labels(0, {"human": {"score": 4, "success": True, "reward": 1.0}})
    records = RecordedRun(tmp_path).records
    assert [r["episode_index"] for r in records] == [0, 1]
    assert records[0]["labels"]["human"] == {"score": 4, "success": True, "reward": 1.0, "valid": True}
    lerobot_episodes = pd.read_parquet(tmp_path / "meta/episodes/chunk-000/file-000.parquet")  # where LeRobot users filter
    assert [json.loads(labels) for labels in lerobot_episodes["dsrl/labels"]] == [r["labels"] for r in records]


def test_a_table_on_disk_without_a_record_is_never_overwritten(tmp_path):
    with RunRecorder(tmp_path, ["wrist"], 5.0) as rec:
        for seed in (0, 1):
            ep = rec.begin_episode("demo", seed, "pull the drawer out")
            ep.add_step(action=np.full(7, seed, np.float32))
            ep.finish(True, True, False, {})
    episodes_file = tmp_path / "meta" / "dsrl_episodes.jsonl"
    episodes_file.write_text(episodes_file.read_text().splitlines()[0] + "\n")  # a lost record of episode 1
    orphan = tmp_path / lerobot_path(tmp_path, "data_path", 1)
    before = orphan.read_bytes()
    with RunRecorder(tmp_path, ["wrist"], 5.0) as rec:
        ep = rec.begin_episode("demo", 2, "pull the drawer out")
        assert ep.index == 2
        ep.add_step(action=np.zeros(7, np.float32))
        ep.finish(True, True, False, {})
    assert orphan.read_bytes() == before


def test_bad_input_is_one_sentence(tmp_path):
    with RunRecorder(tmp_path, ["wrist"], 5.0) as rec:
        with pytest.raises(RecordingError, match="Unknown episode kind 'training'; choose one of: warm_start, train"):
            rec.begin_episode("training", 0, "x")
        ep = rec.begin_episode("train", 0, "x")
        with pytest.raises(RecordingError, match="must be an H x W x 3 uint8 image"):
            ep.add_frames({"wrist": np.zeros((8, 8), np.float32)})
        with pytest.raises(RecordingError, match="Unknown camera 'top'"):
            ep.add_frames({"top": np.zeros((8, 8, 3), np.uint8)})
        with pytest.raises(RecordingError, match="filled in by the recorder"):
            ep.add_step(frame_index=3)
        with pytest.raises(RecordingError, match="still being recorded"):
            rec.begin_episode("train", 1, "x")
        with pytest.raises(RecordingError, match=r"^Episode 0 has no rows to seal; add_step at least once \(the final observation\) before finish\.$"):
            ep.finish(False, False, True, {})
        with pytest.raises(RecordingError, match=r"^Column names starting with 'valid\.' \(valid\.x\) are the recorder's masks; rename them\.$"):
            ep.add_step(valid={"x": 1.0})
        ep.add_step(noise=np.zeros((4, 7), np.float32), stage=0)
        with pytest.raises(RecordingError, match=r"^Column 'noise' has shape \[28\], earlier rows \[4, 7\]; keep one shape per column\.$"):
            ep.add_step(noise=np.zeros(28, np.float32))
        with pytest.raises(RecordingError, match=r"^Column 'stage' holds a string, earlier rows a number; keep one kind of value per column\.$"):
            ep.add_step(stage="grasp")
        ep.finish(False, False, True, {})
        follow = rec.begin_episode("train", 1, "x")
        with pytest.raises(RecordingError, match=r"^Column 'noise' has shape \[2, 7\], earlier episodes \[4, 7\]; keep one shape per column\.$"):
            follow.add_step(noise=np.zeros((2, 7), np.float32))
        with pytest.raises(RecordingError, match="already sealed"):
            ep.add_step(action=np.zeros(7, np.float32))
        follow.abort()
    assert len(RecordedRun(tmp_path).records) == 1  # an episode cut off before its first row leaves nothing
    with pytest.raises(RecordingError, match="holds no recorded episodes"):
        RecordedRun(tmp_path / "nothing")


def test_recorded_episodes_with_images_and_labels_feed_pretraining(tmp_path):
    env = make_sim_env(cameras=("wrist",), image_size=16, seed=0, max_steps=15)
    with RunRecorder(tmp_path, ["wrist"], env.control_hz) as rec:
        records = [record_episode(env, scripted_expert(env, 0.3, seed), rec, kind="baseline", seed=seed,
                                  backends=[SimTruthBackend()]) for seed in range(2)]
    assert all(r["labels"]["sim_truth"]["reward"] == float(r["success"]) for r in records)
    episodes = load_episodes(tmp_path)
    assert [len(e) for e in episodes] == [r["steps"] for r in records]
    assert episodes[0].observations["wrist_image"].shape == (records[0]["steps"] + 1, 16, 16, 3)
    data = chunk_dataset(episodes, ["proprio", "wrist_image"], chunk_size=4)
    assert len(data) == sum(r["steps"] for r in records) and data.obs["wrist_image"].dtype == np.uint8


def test_collect_demos_through_the_recorder_keeps_failures_and_pretrains_on_successes(tmp_path):
    cfg = load_config(overrides=[*STATE, "demos.format=lerobot", f"demos.out_dir={tmp_path}", "demos.episodes=2",
                                 "demos.successful_only=true", "demos.expert_noise=0.3", "task.name=drawer", "task.max_steps=12"])
    paths = collect_demos(cfg)
    run = RecordedRun(tmp_path)
    assert len(paths) == 2 and all(p.is_file() for p in paths)
    assert {r["kind"] for r in run.records} == {"demo"}
    successes = [r for r in run.records if r["success"]]
    assert len(successes) == 2 and len(run.records) > 2  # noisy demos fail sometimes; failed attempts are kept
    assert [e.meta["episode_index"] for e in load_episodes(tmp_path)] == [r["episode_index"] for r in successes]
    bad = load_config()
    bad.demos.format = "hdf5"  # past load_config's own check: collect_demos refuses it too
    with pytest.raises(ValueError, match="Unknown demos.format 'hdf5'; choose one of: lerobot, npz"):
        collect_demos(bad)


def test_meta_files_are_valid_json_after_every_episode(tmp_path):
    """Every meta file is valid JSON after each episode (they are replaced atomically, never appended)."""
    with RunRecorder(tmp_path, [], 5.0) as rec:
        for i in range(3):
            ep = rec.begin_episode("eval", i, "pull the drawer out")
            ep.add_step(action=np.zeros(7, np.float32))
            ep.finish(False, False, True, {})
            assert json.loads((tmp_path / "meta" / "info.json").read_text())["total_episodes"] == i + 1
            assert len((tmp_path / "meta" / "dsrl_episodes.jsonl").read_text().splitlines()) == i + 1
    assert not [p for p in os.listdir(tmp_path / "meta") if p.endswith(".tmp")]


def test_an_episode_whose_sealing_failed_is_sealed_complete_by_the_next_recorder(tmp_path, monkeypatch):
    import dsrl_real.recording.writer as writer

    rec = RunRecorder(tmp_path, [], 5.0)
    ep = rec.begin_episode("eval", 0, "pull the drawer out")
    ep.add_step(action=np.ones(7, np.float32))

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(writer.pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ep.finish(success=True, terminated=True, truncated=False, labels={"human": {"success": True}})
    monkeypatch.undo()
    rec._release()  # the process dies here, without closing the recorder
    with RunRecorder(tmp_path, [], 5.0) as again:
        record = again.records[0]
    assert not record["partial"] and record["success"] and record["labels"]["human"]["success"] is True
    assert "interruption" not in record and record["steps"] == 1


def test_odd_sized_frames_are_padded_for_h264_and_read_back_at_their_own_size(tmp_path):
    frames = [np.full((15, 17, 3), 40 * t, np.uint8) for t in range(4)]
    with RunRecorder(tmp_path, ["top"], 5.0) as rec:
        ep = rec.begin_episode("eval", 0, "x")
        for frame in frames:
            ep.add_frames({"top": frame})
            ep.add_step(proprio=np.zeros(7, np.float32))
        ep.finish(False, False, True, {})
    run = RecordedRun(tmp_path)
    assert run.info["features"]["observation.images.top"]["shape"] == [16, 18, 3]  # what LeRobot decodes
    assert run.record(0)["frame_shapes"] == {"top": [15, 17]}
    images = run.episode(0, images=True).observations["top_image"]
    assert images.shape == (4, 15, 17, 3)
    assert np.abs(images.astype(float) - np.stack(frames)).mean() < 4


def test_recorded_episodes_seed_a_replay_buffer(tmp_path):
    from dsrl_real.data.replay import ReplayBuffer
    from dsrl_real.recording import replay_episodes

    env = make_sim_env(cameras=(), seed=0, max_steps=10)
    rng = np.random.default_rng(0)
    with RunRecorder(tmp_path, [], env.control_hz) as rec:
        for seed in range(2):
            obs, info = env.reset(seed=seed)
            ep = rec.begin_episode("train", seed, env.task.instruction)
            done, t = False, 0
            while not done:
                w = rng.standard_normal((2, 7)).astype(np.float32) if t % 2 == 0 else None  # a chunk of 2 steps
                action = env.action_space.sample()
                next_obs, reward, terminated, truncated, next_info = env.step(action)
                ep.add_step(**step_columns(obs, info, action=action, reward=reward), noise=w)
                obs, info, done, t = next_obs, next_info, terminated or truncated, t + 1
            ep.add_step(**step_columns(obs, info))
            ep.finish(success=terminated, terminated=terminated, truncated=truncated, labels={})
    buffer = ReplayBuffer(100)
    for steps in replay_episodes(tmp_path, chunk_size=2):
        assert steps["kind"] == "train" and steps["noise"].shape == (5, 2, 7) and steps["truncated"]
        features = steps["observations"]["proprio"]
        buffer.add_episode(steps["observations"], features, steps["noise"], steps["chunks"], steps["rewards"],
                           steps["terminated"], steps["truncated"])
    assert len(buffer) == 10 and buffer.num_episodes_started == 2
    batch = buffer.sample(8, np.random.default_rng(0))
    assert batch["has_noise"].all() and batch["actions"].shape == (8, 2, 7)


def test_missing_or_damaged_files_of_a_recorded_run_are_named_when_read(tmp_path):
    from damaged_runs import PROBLEMS, TABLE, VIDEO, record_damaged_run

    run_dir = record_damaged_run(tmp_path)
    run = RecordedRun(run_dir)
    assert run.check_files() == PROBLEMS
    with pytest.raises(RecordingError) as caught:
        run.episode(1)
    assert str(caught.value) == f"'{run_dir / TABLE}', the table of episode 1, is missing; restore it from a copy of the run."
    with pytest.raises(RecordingError) as caught:
        run.episode(2, images=True)
    assert str(caught.value).startswith(f"'{run_dir / VIDEO}', the 'wrist' video of episode 2, is unreadable (")
    assert len(run.episode(3, images=True).observations["wrist_image"]) == run.record(3)["length"]  # the rest reads
    # A shorter video in an episode's place: its frame count disagrees with the record.
    from dsrl_real.analysis.metrics import write_video

    target = run.layout.video_path(3, "wrist")
    write_video(target, np.zeros((3, 16, 16, 3), np.uint8), fps=5.0)
    expected = run.record(3)["frames"]["wrist"]
    assert RecordedRun(run_dir).check_files()[2:] == [
        f"'{target.relative_to(run_dir)}' holds 3 of the {expected} frames its record counts; restore it from a copy of the run."]
    target.unlink()
    with pytest.raises(RecordingError, match=r"the 'wrist' video of episode \d, is missing; restore it from a copy of the run\.$"):
        RecordedRun(run_dir).frames(3, "wrist")
