"""Demo episodes on disk: numbering continues after the highest index, nothing is ever overwritten, and a
corrupt file is one sentence naming it."""

import os

import numpy as np
import pytest
from conftest import STATE

from dsrl_real.config import ConfigError, load_config
from dsrl_real.data.episodes import Episode, load_episode, load_episode_folder, save_episode
from dsrl_real.errors import UserError
from dsrl_real.recording import RecordingError
from dsrl_real.rollout.demos import collect_demos


def episode(value: float) -> Episode:
    return Episode({"proprio": np.full((3, 7), value, np.float32)}, np.full((2, 7), value, np.float32),
                   np.zeros(2, np.float32), {"success": True, "value": value})


def test_collect_demos_into_a_folder_with_a_gap_continues_after_the_highest_index(tmp_path):
    save_episode(tmp_path, episode(0.0))
    save_episode(tmp_path, episode(1.0))
    save_episode(tmp_path, episode(2.0))
    (tmp_path / "episode_000001.npz").unlink()  # the user deleted a bad demo
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cfg = load_config(overrides=[*STATE, f"demos.out_dir={tmp_path}", "demos.episodes=2", "demos.successful_only=false",
                                 "task.name=drawer", "task.max_steps=5", "demos.format=npz"])
    paths = collect_demos(cfg)
    assert [p.name for p in paths] == ["episode_000003.npz", "episode_000004.npz"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [*sorted(before), "episode_000003.npz", "episode_000004.npz"]
    assert [e.meta.get("value") for e in load_episode_folder(tmp_path)] == [0.0, 2.0, None, None]


def test_an_episode_is_never_written_over_an_existing_file(tmp_path, monkeypatch):
    save_episode(tmp_path, episode(0.0))
    # Another writer takes index 1 between this writer's look at the folder and its write.
    from dsrl_real.data import episodes

    real = episodes.episode_files
    calls = []

    def racing(directory):
        found = real(directory)
        if not calls:
            os.link(tmp_path / "episode_000000.npz", tmp_path / "episode_000001.npz")
        calls.append(1)
        return found

    monkeypatch.setattr(episodes, "episode_files", racing)
    path = save_episode(tmp_path, episode(5.0))
    assert path.name == "episode_000002.npz" and load_episode(path).meta["value"] == 5.0
    assert load_episode(tmp_path / "episode_000001.npz").meta["value"] == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.npz", "episode_000001.npz", "episode_000002.npz"]


@pytest.mark.parametrize("fails_at", ["write", "close"])
def test_a_full_disk_leaves_no_temporary_file_and_earlier_demos_as_they_were(tmp_path, monkeypatch, fails_at):
    save_episode(tmp_path, episode(0.0))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    from dsrl_real.data import episodes

    real_fdopen = episodes.os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def write(self, data):
            if fails_at == "write":
                raise OSError(28, "No space left on device")
            return self.f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            if fails_at == "close":  # buffered bytes that found no room when flushed at close
                raise OSError(28, "No space left on device")

    monkeypatch.setattr(episodes.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left on device"):
        save_episode(tmp_path, episode(1.0))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_indices_past_six_digits_sort_by_number(tmp_path):
    save_episode(tmp_path, episode(0.0))
    os.rename(tmp_path / "episode_000000.npz", tmp_path / "episode_999999.npz")
    assert save_episode(tmp_path, episode(1.0)).name == "episode_1000000.npz"
    assert save_episode(tmp_path, episode(2.0)).name == "episode_1000001.npz"
    assert [e.meta["value"] for e in load_episode_folder(tmp_path)] == [0.0, 1.0, 2.0]


def test_a_corrupt_demo_is_one_sentence_naming_the_file(tmp_path):
    save_episode(tmp_path, episode(0.0))
    bad = save_episode(tmp_path, episode(1.0))
    bad.write_bytes(bad.read_bytes()[:100])  # cut off, as by a full disk on another tool's copy
    with pytest.raises(RecordingError) as caught:
        load_episode_folder(tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert message == f"The episode file '{bad}' is unreadable (BadZipFile); move it out of the folder or re-record it."


@pytest.mark.parametrize("demo_format", ["npz", "lerobot"])
def test_collect_demos_refuses_a_training_runs_folder_and_changes_nothing(tmp_path, demo_format):
    (tmp_path / "checkpoints" / "episode_000002").mkdir(parents=True)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "episode", "step": 8}\n')
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cfg = load_config(overrides=[*STATE, f"demos.out_dir={tmp_path}", "demos.episodes=1", f"demos.format={demo_format}",
                                 "task.max_steps=5"])
    with pytest.raises(UserError, match=rf"^demos.out_dir '{tmp_path}' holds a training run \(checkpoints, metrics.jsonl\); "
                                        r"demonstrations go into a folder of their own: choose another demos.out_dir\.$"):
        collect_demos(cfg)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_demos_go_on_in_the_format_their_folder_holds(tmp_path):
    save_episode(tmp_path / "npz", episode(0.0))
    demos = [*STATE, "demos.episodes=1", "task.name=drawer", "task.max_steps=5"]
    with pytest.raises(ConfigError) as caught:  # the default format is a LeRobot recording
        collect_demos(load_config(overrides=[*demos, f"demos.out_dir={tmp_path / 'npz'}"]))
    assert str(caught.value) == (f"demos.out_dir '{tmp_path / 'npz'}' holds .npz demos; add to them with demos.format=npz, "
                                 "or choose another demos.out_dir for a LeRobot recording.")
    collect_demos(load_config(overrides=[*demos, f"demos.out_dir={tmp_path / 'lerobot'}"]))
    with pytest.raises(ConfigError) as caught:
        collect_demos(load_config(overrides=[*demos, f"demos.out_dir={tmp_path / 'lerobot'}", "demos.format=npz"]))
    assert str(caught.value) == (f"demos.out_dir '{tmp_path / 'lerobot'}' holds a LeRobot recording; add to it with "
                                 "demos.format=lerobot, or choose another demos.out_dir for .npz demos.")
    assert sorted(p.name for p in (tmp_path / "npz").iterdir()) == ["episode_000000.npz"]
