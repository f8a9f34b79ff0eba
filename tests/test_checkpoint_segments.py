"""Checkpoints take the replay segments unchanged since the previous checkpoint from it (train/checkpoints.py)."""

import errno
import json
import os

import numpy as np

from dsrl_real.data import replay_npz
from dsrl_real.train import checkpoints

NO_RECORDING = "train.record=false"
SEGMENTS = ["segment_000000_g000000000004.npz", "segment_000001_g000000000008.npz", "segment_000002_g000000000012.npz"]


def replay(out, episodes: int):
    return out / "checkpoints" / checkpoints.folder_name(episodes) / "replay"


def test_unchanged_segments_are_hard_links_of_the_previous_checkpoints_and_keep_its_manifest_entries(tmp_path, fast_trainer):
    trainer = fast_trainer(tmp_path, NO_RECORDING, "train.env_steps=36", "train.buffer_segment_slots=4")  # an episode a segment
    trainer.run()
    two, three = replay(tmp_path, 2), replay(tmp_path, 3)
    assert sorted(p.name for p in two.iterdir()) == ["index.json", *SEGMENTS[:2]]
    assert sorted(p.name for p in three.iterdir()) == ["index.json", *SEGMENTS]
    assert [(three / n).stat().st_ino == (two / n).stat().st_ino for n in SEGMENTS[:2]] == [True, True]
    assert (three / SEGMENTS[0]).stat().st_nlink == 2  # episode 1's checkpoint, pruned, left its link to these two
    manifests = [json.loads((folder.parent / "manifest.json").read_text())["files"] for folder in (two, three)]
    assert [manifests[1][f"replay/{n}"] == manifests[0][f"replay/{n}"] for n in SEGMENTS[:2]] == [True, True]
    assert checkpoints.problem(two.parent) is None and checkpoints.problem(three.parent) is None
    resumed = fast_trainer(tmp_path, NO_RECORDING, "train.env_steps=36")
    assert resumed.restore() and resumed.buffer.segments() == [(0, 4, 4), (4, 4, 8), (8, 4, 12)]
    for name, column in trainer.buffer.columns().items():
        np.testing.assert_array_equal(resumed.buffer.columns()[name], column, err_msg=name)


def test_where_the_file_system_cannot_link_the_segments_are_copied(tmp_path, fast_trainer, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", no_links)
    fast_trainer(tmp_path, NO_RECORDING, "train.env_steps=36", "train.buffer_segment_slots=4").run()
    two, three = replay(tmp_path, 2), replay(tmp_path, 3)
    assert [(three / n).stat().st_ino != (two / n).stat().st_ino for n in SEGMENTS[:2]] == [True, True]
    assert [(three / n).read_bytes() == (two / n).read_bytes() for n in SEGMENTS[:2]] == [True, True]
    assert checkpoints.problem(three.parent) is None and sorted(p.name for p in three.iterdir()) == ["index.json", *SEGMENTS]


def test_a_checkpoint_of_the_single_file_format_resumes_and_the_next_one_is_segmented(tmp_path, fast_trainer):
    out = tmp_path / "run"
    trainer = fast_trainer(out, NO_RECORDING, "train.env_steps=24")
    trainer.run()
    old = out / "checkpoints" / checkpoints.folder_name(2)
    replay_npz.write(trainer.buffer, old / "replay.npz")  # as checkpoints were written before segments
    for name in ("replay/index.json", "replay/segment_000000_g000000000008.npz"):
        (old / name).unlink()
    (old / "replay").rmdir()
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["files"] = {n: e for n, e in manifest["files"].items() if not n.startswith("replay/")}
    manifest["files"]["replay.npz"] = {"sha256": checkpoints.sha256_file(old / "replay.npz"), "bytes": (old / "replay.npz").stat().st_size}
    (old / "manifest.json").write_text(json.dumps(manifest))
    resumed = fast_trainer(out, NO_RECORDING, "train.env_steps=36")
    assert resumed.restore() and resumed.episodes == 2 and resumed.buffer.num_episodes_started == 2
    resumed.run(resume=True)
    assert sorted(p.name for p in replay(out, 3).iterdir()) == ["index.json", "segment_000000_g000000000012.npz"]
