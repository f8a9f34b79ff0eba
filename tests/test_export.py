"""Runs recorded before the LeRobot v3.0 layout (tests/data/legacy_v21_run, recorded by dsrl_real at
git 682f13f: three episodes, a wrist camera, chunk noise, a late progress column, labels, a partial
episode) are still read, and `dsrl-real export` converts them into a v3.0 dataset without losing any
of it."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dsrl_real.cli import main
from dsrl_real.recording import RecordedRun, RecordingError, RunRecorder
from dsrl_real.recording.export import export_run

LEGACY = Path(__file__).parent / "data" / "legacy_v21_run"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def progress(run, index):
    """The late `progress.robometer` column of an episode, NaN where a row had none (or the episode none at all)."""
    table = run.table(index)
    if "progress.robometer" not in table.column_names:
        return [np.nan] * table.num_rows
    return [np.nan if v is None else round(v, 6) for v in table.column("progress.robometer").to_pylist()]


@pytest.fixture
def legacy(tmp_path):
    return Path(shutil.copytree(LEGACY, tmp_path / "legacy"))


def test_the_reader_still_reads_a_v21_run(legacy):
    run = RecordedRun(legacy)
    assert run.layout.legacy and [r["partial"] for r in run.records] == [False, False, True]
    ep = run.episode(0, images=True)
    np.testing.assert_array_equal(ep.actions, np.stack([np.full(7, t / 10, np.float32) for t in range(6)]))
    assert ep.noise.shape == (6, 4, 7) and np.isnan(ep.noise[1:4]).all() and not np.isnan(ep.noise[[0, 4]]).any()
    assert ep.observations["wrist_image"].shape == (7, 16, 16, 3) and ep.labels["human"]["score"] == 2


def test_recording_into_a_v21_run_is_refused_with_the_export_command(legacy):
    with pytest.raises(RecordingError) as caught:
        RunRecorder(legacy, ["wrist"], 5.0)
    assert str(caught.value) == (f"'{legacy}' was recorded in the older LeRobot v2.1 layout; convert it with "
                                 f"`dsrl-real export {legacy} NEW_DIR` and record into NEW_DIR, or choose another run directory.")


def test_export_converts_every_episode_and_leaves_the_old_run_untouched(legacy, tmp_path, capsys):
    before = digest(legacy)
    assert main(["export", str(legacy), str(tmp_path / "v3")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["episodes"] == 3 and summary["frames"] == 7 + 7 + 4
    assert digest(legacy) == before
    old, new = RecordedRun(legacy), RecordedRun(tmp_path / "v3")
    assert not new.layout.legacy
    info = json.loads((tmp_path / "v3" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["features"]["noise"]["shape"] == [4, 7]
    keep = ("kind", "seed", "instruction", "partial", "success", "terminated", "truncated", "steps", "labels", "length",
            "started_at", "safety_counts", "interruption")
    for a, b in zip(old.records, new.records):
        assert {k: a.get(k) for k in keep} == {k: b.get(k) for k in keep}
        assert b["wall_time_s"] == pytest.approx(a["wall_time_s"], abs=1e-6)
        x, y = old.episode(a["episode_index"], images=True), new.episode(b["episode_index"], images=True)
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.rewards, y.rewards)
        np.testing.assert_array_equal(x.noise, y.noise)  # NaN where the old run had none, in the same places
        np.testing.assert_array_equal(x.observations["proprio"], y.observations["proprio"])
        assert np.abs(x.observations["wrist_image"].astype(float) - y.observations["wrist_image"]).mean() < 3  # re-encoded
        np.testing.assert_allclose(progress(new, b["episode_index"]), progress(old, a["episode_index"]), rtol=1e-6)  # came late
    rows = pd.read_parquet(tmp_path / "v3" / "data" / "chunk-000" / "file-000.parquet")
    assert not rows.isna().any().any() and rows["valid.noise"].tolist() == [True, False, False, False, True, False, False]


def test_export_refuses_a_v3_run_and_a_folder_that_is_not_empty(legacy, tmp_path):
    export_run(legacy, tmp_path / "v3")
    with pytest.raises(RecordingError, match=r"is not a run recorded in the LeRobot v2\.1 layout; runs recorded now are already"):
        export_run(tmp_path / "v3", tmp_path / "again")
    with pytest.raises(RecordingError, match=r"^'.*v3' is not empty; give a new or empty folder to export into\.$"):
        export_run(legacy, tmp_path / "v3")
