"""The replay buffer on disk: segments (data/replay_segments.py) and the earlier single replay.npz (data/replay_npz.py)."""

import json
import os

import numpy as np
import pytest
from conftest import assert_same_batch
from test_replay import make_episode

from dsrl_real.data import replay_files, replay_npz, replay_segments
from dsrl_real.data.replay import ReplayBuffer, ReplayFileError


def same_buffers(a: ReplayBuffer, b: ReplayBuffer, generations: bool = True) -> None:
    """The same contents and next batch (and, with `generations`, the same slots-written count and segment names)."""
    drop = set() if generations else {"written"}
    assert {k: v for k, v in a.layout().items() if k not in drop} == {k: v for k, v in b.layout().items() if k not in drop}
    assert len(a) == len(b) and (not generations or a.segments() == b.segments())
    for (name, x), (other, y) in zip(a.columns().items(), b.columns().items(), strict=True):
        assert name == other
        np.testing.assert_array_equal(x[:a.num_time_indices], y[:b.num_time_indices])
    expected, got = a.sample(64, np.random.default_rng(5)), b.sample(64, np.random.default_rng(5))
    assert_same_batch(got, expected)


def filled(capacity=40, lengths=(4, 3, 5), segment_slots=8) -> ReplayBuffer:
    buf = ReplayBuffer(capacity, segment_slots=segment_slots)
    for i, T in enumerate(lengths):
        buf.add_episode(**make_episode(i, T, with_noise=i != 1), terminated=i == 0, truncated=i != 0)
    return buf


def test_segments_round_trip_and_name_only_the_filled_slots(tmp_path):
    buf = filled()  # 5 + 4 + 6 = 15 time indices: segments of 8 and 7 slots
    folder = replay_files.save(buf, tmp_path / "replay")
    index = json.loads((folder / "index.json").read_text())
    assert index["format"] == "dsrl_real.data.replay_segments.v1" and index["size"] == 15 and index["segment_slots"] == 8
    assert index["segments"] == [{"file": "segment_000000_g000000000009.npz", "slots": 8, "generation": 9},  # last written by episode 1
                                 {"file": "segment_000001_g000000000015.npz", "slots": 7, "generation": 15}]
    assert sorted(p.name for p in folder.iterdir()) == ["index.json", *(e["file"] for e in index["segments"])]
    with np.load(folder / index["segments"][1]["file"]) as seg:
        columns = list(index["columns"])
        image = seg[f"c{columns.index('obs/image')}"]
        assert image.dtype == np.uint8 and image.shape == (7, 8, 6, 3)  # one row per time index, frames as uint8
    restored = replay_files.load(folder)
    same_buffers(buf, restored)
    # Both go on alike, the ring wrapping (capacity 40) and rewriting segment 0.
    for b in (buf, restored):
        for i in range(3, 8):
            b.add_episode(**make_episode(i, 5), terminated=False, truncated=True)
    same_buffers(buf, restored)
    same_buffers(buf, replay_files.load(replay_files.save(buf, tmp_path / "again")))
    empty = ReplayBuffer(10)
    assert replay_files.load(replay_files.save(empty, tmp_path / "empty")).layout() == empty.layout()


def test_saving_again_writes_only_the_segments_written_to_since(tmp_path):
    buf = filled(capacity=64, lengths=(7, 7, 7))  # 24 time indices: 3 full segments of 8
    folder = replay_files.save(buf, tmp_path / "replay")
    inodes = {p.name: p.stat().st_ino for p in folder.glob("segment_*")}
    buf.add_episode(**make_episode(3, 3), terminated=True, truncated=False)  # slots 24..27: segment 3 only
    replay_files.save(buf, folder)
    after = {p.name: p.stat().st_ino for p in folder.glob("segment_*")}
    assert after == {**inodes, "segment_000003_g000000000028.npz": after["segment_000003_g000000000028.npz"]}
    buf.add_episode(**make_episode(4, 2), terminated=True, truncated=False)  # segment 3 again: its file is replaced
    replay_files.save(buf, folder)
    assert sorted(p.name for p in folder.glob("segment_*")) == [*sorted(inodes), "segment_000003_g000000000031.npz"]
    same_buffers(buf, replay_files.load(folder))


def test_a_missing_or_damaged_segment_is_one_sentence_naming_it(tmp_path):
    folder = replay_files.save(filled(), tmp_path / "replay")
    first, second = (folder / e["file"] for e in json.loads((folder / "index.json").read_text())["segments"])
    os.truncate(second, second.stat().st_size // 2)
    with pytest.raises(ReplayFileError, match=rf"^The replay buffer segment '{second}' is truncated or corrupt \(BadZipFile\); "
                                              r"restore the checkpoint folder from a copy\.$"):
        replay_files.load(folder)
    second.unlink()
    with pytest.raises(ReplayFileError, match=rf"^The replay buffer segment '{second}' is missing; restore the checkpoint folder "
                                              r"from a copy\.$"):
        replay_files.load(folder)
    np.savez(first, c0=np.zeros(3))
    with pytest.raises(ReplayFileError, match=rf"^The replay buffer segment '{first}' is truncated or corrupt \(KeyError\)"):
        replay_files.load(folder)
    (folder / "index.json").write_text("{")
    with pytest.raises(ReplayFileError, match=rf"^The replay buffer index '{folder / 'index.json'}' is corrupt \(JSONDecodeError\); "
                                              r"restore it from a copy\.$"):
        replay_files.load(folder)
    (folder / "index.json").unlink()
    with pytest.raises(ReplayFileError, match=rf"^The replay buffer folder '{folder}' has no index.json; restore the folder from a "
                                              r"copy\.$"):
        replay_files.load(folder)
    with pytest.raises(FileNotFoundError, match=r"^No replay buffer at '.*nowhere'; check the path or start with an empty buffer\.$"):
        replay_files.load(tmp_path / "nowhere")


def test_the_earlier_single_file_format_still_loads(tmp_path):
    buf = filled(capacity=12)  # wraps: every slot filled
    path = replay_npz.write(buf, tmp_path / "replay.npz")
    old = replay_files.load(path)
    assert old.layout() == {**buf.layout(), "written": 12, "segment_slots": 512}
    wrapped = ReplayBuffer(12, segment_slots=512)
    for i, T in enumerate((4, 3, 5)):
        wrapped.add_episode(**make_episode(i, T, with_noise=i != 1), terminated=i == 0, truncated=i != 0)
    same_buffers(wrapped, old, generations=False)  # how many slots were written before is not in the old file
    saved = replay_files.save(old, tmp_path / "replay")  # an old checkpoint's buffer, saved as segments from then on
    same_buffers(old, replay_files.load(saved))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ReplayFileError, match=rf"^The replay buffer file '{path}' is truncated or corrupt \(BadZipFile\); restore it "
                                              r"from a copy\.$"):
        replay_files.load(path)


def test_encode_leaves_out_the_segments_the_receiver_has(tmp_path):
    buf = filled(capacity=64, lengths=(7, 7, 7, 3))  # segments 0-2 full, 3 partly filled
    names = [e["file"] for e in replay_segments.index(buf)["segments"]]
    files = replay_segments.encode(buf, have=set(names[:3]))
    assert sorted(files) == sorted(["index.json", names[3]])
    folder = replay_files.save(buf, tmp_path / "full")
    for name, data in files.items():
        assert data == (folder / name).read_bytes()
