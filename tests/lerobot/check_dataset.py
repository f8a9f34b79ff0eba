"""Prove that recorded runs are LeRobot datasets, with the released LeRobot itself (run in its venv,
never imported by the test suite; .ci/lerobot builds that venv).

For each folder, in order, it exits non-zero at the first failure:
  1. `LeRobotDataset(repo_id, root=path)` opens it with the Hub switched off (HF_HUB_OFFLINE=1), so a
     folder LeRobot finds incomplete fails here instead of trying to download it.
  2. Every declared feature of every frame has the dtype and shape info.json declares
     (shape (1,) features come back as 0-d tensors; videos as (C, H, W) for a declared (H, W, C)).
  3. A frame of each camera decodes for the first and last row of every episode, and is the frame this
     project's reader gives for that row (`thumbnails.npz`, left by record_samples.py, when present).
  4. stats.json has every feature, shaped as LeRobot's own writer shapes them ((C, 1, 1) for cameras).
  5. A full epoch through torch's DataLoader (num_workers=0, default collate) yields every frame once.
  6. lerobot-doctor (`lerobot-doctor check --ci`) reports no FAIL.

Usage:
    python tests/lerobot/check_dataset.py DATASET_DIR [DATASET_DIR ...] [--video-backend pyav|torchcodec]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Before any huggingface import: never touch the Hub, and keep the Arrow cache that `datasets` builds from
# the parquet files out of ~/.cache (a private temp dir, removed at exit), so every run re-reads the files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "HF_DATASETS_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="lerobot_check_cache_")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], True)

import numpy as np
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from torch.utils.data import DataLoader

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
                "int32": torch.int32, "bool": torch.bool, "uint8": torch.uint8}


def fail(msg: str) -> None:
    print(f"FAIL: {msg}")
    sys.exit(1)


def expected_shape(ft: dict) -> tuple[int, ...]:
    """Shape of one item as LeRobotDataset returns it, from the info.json declaration."""
    shape = tuple(ft["shape"])
    if ft["dtype"] == "video":
        names = ft.get("names") or ["height", "width", "channels"]
        dims = dict(zip(names, shape, strict=True))
        return (dims["channels"], dims["height"], dims["width"])
    return () if shape == (1,) else shape


def check_item(item: dict, features: dict, where: str) -> None:
    for key, ft in features.items():
        if key not in item:
            fail(f"{where}: feature {key!r} missing from the item")
        value = item[key]
        if ft["dtype"] == "string":  # strings stay Python str (and collate to a list of str)
            if not isinstance(value, str):
                fail(f"{where}: {key!r} is {type(value).__name__}, info.json declares a string")
            continue
        if not isinstance(value, torch.Tensor):
            fail(f"{where}: {key!r} is {type(value).__name__}, not a tensor")
        if tuple(value.shape) != expected_shape(ft):
            fail(f"{where}: {key!r} has shape {tuple(value.shape)}, info.json declares {ft['shape']}")
        want = torch.float32 if ft["dtype"] == "video" else TORCH_DTYPES.get(ft["dtype"])
        if want is not None and value.dtype != want:
            hint = " (LeRobot returns float64 features as float32: declare float32, or int64 for times)" \
                if ft["dtype"] == "float64" else ""
            fail(f"{where}: {key!r} has dtype {value.dtype}, info.json declares {ft['dtype']}{hint}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            fail(f"{where}: {key!r} has NaN/Inf")
    if not isinstance(item.get("task"), str):
        fail(f"{where}: item['task'] is {item.get('task')!r}, expected the task string")


def check_stats(ds: LeRobotDataset) -> None:
    stats = ds.meta.stats
    if stats is None:
        fail("meta/stats.json missing: policies normalise with it")
    for key, ft in ds.features.items():
        if key not in stats:
            fail(f"stats.json has no entry for {key!r}")
        # Cameras: per channel (C, 1, 1). Numeric: the last dimension only -- LeRobot's own writer pools
        # (N, 4, 7) to (N*4, 7) (compute_stats.RunningQuantileStats), so a (4, 7) feature has (7,) stats.
        want = (ft["shape"][-1], 1, 1) if ft["dtype"] in ("video", "image") else (ft["shape"][-1],)
        for name in ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"):
            got = stats[key].get(name)
            if got is None or tuple(got.shape) != want:
                fail(f"stats.json[{key!r}][{name!r}] has shape {None if got is None else got.shape}, expected {want}")
        if tuple(stats[key]["count"].shape) != (1,):
            fail(f"stats.json[{key!r}]['count'] must be a 1-element list")


def run_doctor(root: Path) -> None:
    try:
        from lerobot_doctor.dataset_loader import load_dataset
        from lerobot_doctor.runner import Severity, run_checks
    except ImportError:
        fail("lerobot-doctor is not installed: pip install lerobot-doctor==0.2.0")
    # Same as `lerobot-doctor check ROOT --ci` (exit 1 on any FAIL), with the messages printed.
    report = run_checks(load_dataset(str(root)))
    for result in report.results:
        for msg in result.messages:
            if msg.severity != Severity.PASS:
                print(f"  doctor {msg.severity.value} [{result.name}] {msg.message}")
    counts = report.summary_counts
    print(f"lerobot-doctor: {counts['PASS']} pass, {counts['WARN']} warn, {counts['FAIL']} fail")
    if report.overall_severity == Severity.FAIL:
        fail("lerobot-doctor reported FAIL")


def check(root: Path, video_backend: str | None) -> None:
    print(f"== {root}")
    info = json.loads((root / "meta/info.json").read_text())
    ds = LeRobotDataset(f"local/{root.name}", root=root, video_backend=video_backend)
    print(f"1. loaded: {ds.num_episodes} episodes, {len(ds)} frames, backend={ds._video_backend}")
    if len(ds) != info["total_frames"] or ds.num_episodes != info["total_episodes"]:
        fail("frame/episode counts differ from info.json")
    features = info["features"]
    cameras = [k for k, ft in features.items() if ft["dtype"] == "video"]
    expected = dict(np.load(root / "thumbnails.npz")) if (root / "thumbnails.npz").is_file() else {}

    for i in range(len(ds)):
        check_item(ds[i], features, f"frame {i}")
    print(f"2. every feature of all {len(ds)} frames has its declared dtype and shape")

    for ep in range(ds.num_episodes):
        row = ds.meta.episodes[ep]
        for i in (row["dataset_from_index"], row["dataset_to_index"] - 1):
            item = ds[i]
            if item["episode_index"].item() != ep or item["index"].item() != i:
                fail(f"row {i}: episode_index/index do not match meta/episodes")
            for cam in cameras:
                if not torch.isfinite(item[cam]).all():
                    fail(f"row {i} {cam}: the decoded frame is not finite")
                if cam in expected:
                    ours = expected[cam][i].astype(np.float64)
                    step = 8
                    theirs = (item[cam].permute(1, 2, 0).numpy() * 255)[::step, ::step][: ours.shape[0], : ours.shape[1]]
                    error = np.abs(theirs - ours).mean()
                    if error > 4:
                        fail(f"row {i} {cam}: LeRobot decodes a frame {error:.1f} grey levels from the one this row recorded")
    print(f"3. decoded first/last frame of each episode for cameras {cameras}")

    check_stats(ds)
    print("4. stats.json covers every feature with the right shapes")

    seen = []
    for batch in DataLoader(ds, batch_size=4, shuffle=True, num_workers=0):
        for key, ft in features.items():
            if ft["dtype"] != "string" and tuple(batch[key].shape[1:]) != expected_shape(ft):
                fail(f"batch {key!r} has shape {tuple(batch[key].shape)}")
        seen.extend(batch["index"].tolist())
    if sorted(seen) != list(range(len(ds))):
        fail("the DataLoader epoch did not yield every frame exactly once")
    print(f"5. DataLoader epoch: {len(seen)} frames in batches of 4")

    run_doctor(root)
    print("6. lerobot-doctor: no FAIL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", type=Path, nargs="+")
    parser.add_argument("--video-backend", default=None, choices=["pyav", "torchcodec"],
                        help="default: LeRobot's own choice (torchcodec if it loads, else pyav)")
    args = parser.parse_args()
    for root in args.roots:
        check(root, args.video_backend)
    print("OK")


if __name__ == "__main__":
    main()
