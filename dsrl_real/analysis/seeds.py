"""Results over seeds: each seed's final success rate is one sample; their mean, a Student t 95 %
interval over them, the difference of two settings paired by seed, and learning curves as mean ±
standard deviation across seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def t_interval(values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] = (0.0, 1.0)) -> list[float] | None:
    """The Student t interval for the mean of `values` (n - 1 degrees of freedom), clipped to `bounds`
    (success rates: [0, 1]; differences of rates: [-1, 1]) and rounded to 3 places; None for fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    from scipy.stats import t  # scipy is slow to import; only a report over seeds needs it

    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return [round(max(bounds[0], mean - half), 3), round(min(bounds[1], mean + half), 3)]


def over_seeds(per_seed: Mapping[str, Mapping]) -> dict:
    """{per_seed, mean, ci95_over_seeds, n_seeds} from each seed's result (its final_success_rate)."""
    rates = [float(r["final_success_rate"]) for r in per_seed.values()]
    return {"per_seed": {k: dict(per_seed[k]) for k in sorted(per_seed, key=int)},
            "mean": round(sum(rates) / len(rates), 4) if rates else None,
            "ci95_over_seeds": t_interval(rates), "n_seeds": len(rates)}


def paired_difference(rates: Mapping[str, float], reference: Mapping[str, float]) -> dict:
    """`rates` minus `reference` (each seed's final success rate, by seed) on the seeds both have: per seed,
    their mean and a Student t 95 % interval over those differences (clipped to [-1, 1]). Pairing by seed takes
    out what a seed's runs share across settings (its scenes and random streams)."""
    common = sorted(set(rates) & set(reference), key=int)
    differences = {s: round(float(rates[s]) - float(reference[s]), 4) for s in common}
    values = list(differences.values())
    return {"per_seed": differences, "mean": round(sum(values) / len(values), 4) if values else None,
            "ci95_over_seeds": t_interval(values, bounds=(-1.0, 1.0)), "n_seeds": len(values)}


def curve_grid(budget: int, every: int) -> list[int]:
    """Where the curves are read: 0 (the base policy), each multiple of `every` below the budget, the budget."""
    return [0, *range(every, budget, every), budget]


def curve_over_seeds(curves: Sequence[Sequence[Mapping]], grid: Sequence[int]) -> dict:
    """Per grid point the mean and sample standard deviation across seeds of the success rate of each
    seed's first evaluation at or after that point (the trainer evaluates at the first episode end past
    each multiple of train.eval_every_steps, and at the budget's end; the seeds' episodes end at
    different steps). A seed with no evaluation that late is left out of that point (None: no seed has one)."""
    means, sds, counts = [], [], []
    for g in grid:
        rates = []
        for curve in curves:
            later = [p for p in sorted(curve, key=lambda p: p["env_steps"]) if p["env_steps"] >= g]
            if later:
                rates.append(float(later[0]["success_rate"]))
        mean = sum(rates) / len(rates) if rates else None
        sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1)) if len(rates) > 1 else 0.0
        means.append(None if mean is None else round(mean, 4))
        sds.append(round(sd, 4))
        counts.append(len(rates))
    return {"env_steps": list(grid), "mean": means, "std": sds, "n_seeds": counts}
