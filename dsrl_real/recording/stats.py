"""Feature statistics as LeRobot lays them out (lerobot/datasets/compute_stats.py): per episode in
meta/episodes, over the whole dataset in meta/stats.json; policies normalise with them.

Each feature has min, max, mean, std, q01, q10, q50, q90, q99 over its last dimension (frames and
any leading axes pooled: a (4, 7) feature has 7 of each, as LeRobot's `RunningQuantileStats`
reshapes to (-1, shape[-1])), and `count`, the frames counted. Cameras have one value per channel,
shaped (3, 1, 1), of pixels scaled to [0, 1]. A feature with a `valid.` mask counts only the rows
that had a value; text has no statistics.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .features import dense, is_mask, mask_name

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
NAMES = ("min", "max", "mean", "std", *QUANTILES)


def value_stats(values: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Statistics of (frames, ..., d) values over every axis but the last."""
    values = np.asarray(values, np.float64)
    values = values.reshape(-1, 1) if values.ndim == 1 else values.reshape(-1, values.shape[-1])
    if len(values) == 0:
        zeros = np.zeros(values.shape[-1])
        return {**{name: zeros for name in NAMES}, "count": np.array([0])}
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0)}
    stats.update({name: np.quantile(values, q, axis=0) for name, q in QUANTILES.items()})
    return {**stats, "count": np.array([frames])}


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of (n, h, w, 3) uint8 frames, shaped (3, 1, 1), in [0, 1]."""
    pixels = np.asarray(frames, np.float64).reshape(-1, 3) / 255.0
    stats = value_stats(pixels, len(frames))
    return {name: v if name == "count" else v.reshape(3, 1, 1) for name, v in stats.items()}


def table_stats(table: pa.Table, features: dict) -> dict[str, dict[str, np.ndarray]]:
    """Statistics of every numeric and bool feature of a conformed episode table."""
    out = {}
    for name, ft in features.items():
        if ft["dtype"] in ("video", "image", "string") or name not in table.column_names:
            continue
        values, _ = dense(table.column(name), ft, table.num_rows)
        mask = mask_name(name)
        if mask in table.column_names and not is_mask(name, features):
            values = values[table.column(mask).to_numpy(zero_copy_only=False)]
        out[name] = value_stats(values, len(values))
    return out


def aggregate(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's statistics over several episodes (lerobot `aggregate_feature_stats`): the
    count-weighted mean, pooled variance and quantiles, min of minima, max of maxima."""
    counted = [s for s in episodes if int(s["count"][0]) > 0] or episodes[:1]
    weights = np.array([max(int(s["count"][0]), 1) for s in counted], np.float64)
    shape = (-1,) + (1,) * (np.ndim(counted[0]["mean"]))
    w = weights.reshape(shape) / weights.sum()
    mean = (w * np.stack([s["mean"] for s in counted])).sum(0)
    variance = (w * np.stack([s["std"] ** 2 + (s["mean"] - mean) ** 2 for s in counted])).sum(0)
    out = {"min": np.min([s["min"] for s in counted], 0), "max": np.max([s["max"] for s in counted], 0),
           "mean": mean, "std": np.sqrt(variance)}
    out.update({name: (w * np.stack([s[name] for s in counted])).sum(0) for name in QUANTILES})
    out["count"] = np.array([sum(int(s["count"][0]) for s in episodes)])
    return out


def dataset_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    names = dict.fromkeys(name for stats in per_episode for name in stats)
    return {name: aggregate([stats[name] for stats in per_episode if name in stats]) for name in names}
