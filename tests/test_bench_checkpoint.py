"""`dsrl-real bench checkpoint` (bench/checkpoint.py): what it prints, not how fast (speed is the bench's, never a test's)."""

import json

from dsrl_real.bench import checkpoint
from dsrl_real.cli import main


def test_the_checkpoint_bench_reports_each_size_for_both_formats(monkeypatch, capsys):
    monkeypatch.setattr(checkpoint, "SIZES", (60, 200))
    monkeypatch.setattr(checkpoint, "SEGMENT_SLOTS", 26)  # one episode of 25 chunk steps a segment
    assert main(["bench", "checkpoint"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["segment_slots"], out["chunk_steps_per_episode"], out["episodes_measured"]) == (26, 25, 3)
    assert [row["slots"] for row in out["sizes"]] == [52, 182]  # whole episodes of 26 time indices
    for row in out["sizes"]:
        old, new = row["single_file"], row["segments"]
        assert set(old) == set(new) == {"seconds_per_episode", "seconds_max", "bytes_written_per_episode", "checkpoint_bytes"}
        assert new["bytes_written_per_episode"] < old["bytes_written_per_episode"] < old["checkpoint_bytes"]
    # The single file grows with the buffer; what segments write per episode does not: one segment, the counters, and the
    # index and the manifest, an entry longer per segment.
    small, large = out["sizes"]
    assert large["single_file"]["bytes_written_per_episode"] > small["single_file"]["bytes_written_per_episode"]
    assert 0 < large["segments"]["bytes_written_per_episode"] - small["segments"]["bytes_written_per_episode"] < 2000
