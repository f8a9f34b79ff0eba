"""How well each learned reward backend agrees with the human's labels in a recorded run.

For every backend that labelled the same episodes as the reference (the human, by default):
- MAE on the 1-5 scale (episodes where both gave a score), with a bootstrap 95% interval;
- success false-positive rate (backend says success, human says failure) and false-negative rate,
  with Wilson 95% intervals, and the false-positive rate by the human's 1-5 score of the failure
  (where a model's false positives fall: near misses or not), when the human used that scale;
- Kendall's tau-b between the episode returns (the labels' rewards; a label without a reward
  counts its success as 0/1), bootstrap interval;
- pairwise preference accuracy: over episode pairs the human labelled differently, the fraction
  the backend orders the same way (a backend tie counts one half); the human's and the backend's
  1-5 scores are compared where each has them for every episode, else their returns. Pairs share
  episodes, so its interval is a bootstrap over episodes, not a binomial one;
- a confusion matrix, human (1-5, or success/failure) against the backend (likewise).
An invalid backend label (an unparsable model answer) counts as the trainer used it: failure,
its reward; it has no score, so it drops out of the MAE. Bootstraps resample episodes with a
fixed seed, so an audit is repeatable.

A verify-positives run (reward.verify) has human labels only where the human was asked: on the successes
the backend claimed and the failures drawn for a check. Its audit says so (`verify_positives`) and reports
what those answers measure (analysis/verify_summary.py): the backend's precision and false-positive share
among its claimed successes, and its false-negative share among the checked failures. The other metrics
are over the asked episodes only, so the claimed successes dominate them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text

from ..errors import UserError
from ..recording.labels import TRAINING_LABEL
from ..recording.layout import write_json
from ..recording.reader import RecordedRun
from ..rollout import rate
from .metrics import save_figure
from .run_dir import find_run
from .verify_summary import verify_summary

REFERENCE = "human"
RESAMPLES = 2000


class AuditError(UserError, ValueError):
    """The run cannot be audited; the message says why and what to record."""


# ---- metrics on plain arrays ---------------------------------------------------------------------
def mean_absolute_error(reference: Sequence[float], estimate: Sequence[float]) -> float:
    ref, est = np.asarray(reference, float), np.asarray(estimate, float)
    return float(np.mean(np.abs(est - ref))) if len(ref) else float("nan")


def _pair_signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i - v_j) over all pairs i < j."""
    upper = np.triu_indices(len(values), k=1)
    return np.sign(values[:, None] - values[None, :])[upper]


def kendall_tau(reference: Sequence[float], estimate: Sequence[float]) -> float:
    """Kendall's tau-b (ties on either side handled as scipy.stats.kendalltau does); NaN when
    either side is constant or has fewer than 2 values. Vectorised, as the bootstrap calls it often."""
    ref_sign, est_sign = _pair_signs(np.asarray(reference, float)), _pair_signs(np.asarray(estimate, float))
    denominator = np.sqrt(np.abs(ref_sign).sum() * np.abs(est_sign).sum())
    return float((ref_sign * est_sign).sum() / denominator) if denominator > 0 else float("nan")


def kendall_p_value(reference: Sequence[float], estimate: Sequence[float]) -> float:
    from scipy.stats import kendalltau  # scipy is slow to import; only the p-value needs it

    if np.isnan(kendall_tau(reference, estimate)):
        return float("nan")
    return float(kendalltau(np.asarray(reference, float), np.asarray(estimate, float)).pvalue)


def pairwise_accuracy(reference: Sequence[float], estimate: Sequence[float]) -> tuple[float, int]:
    """(credit, pairs): over pairs i < j with reference[i] != reference[j], credit 1 when the
    estimate orders them the same way, 1/2 when it ties them, 0 otherwise."""
    ref_sign, est_sign = _pair_signs(np.asarray(reference, float)), _pair_signs(np.asarray(estimate, float))
    counted = ref_sign != 0
    credit = np.where(est_sign[counted] == 0, 0.5, (est_sign[counted] == ref_sign[counted]).astype(float))
    return float(credit.sum()), int(counted.sum())


def confusion_matrix(reference: Sequence, estimate: Sequence, rows: Sequence, columns: Sequence) -> list[list[int]]:
    counts = np.zeros((len(rows), len(columns)), int)
    row_index, col_index = {v: i for i, v in enumerate(rows)}, {v: i for i, v in enumerate(columns)}
    for r, c in zip(reference, estimate):
        counts[row_index[r], col_index[c]] += 1
    return counts.tolist()


def bootstrap_interval(statistic: Callable[..., float], arrays: Sequence[np.ndarray], resamples: int = RESAMPLES,
                       seed: int = 0) -> list[float] | None:
    """Percentile 95% interval of `statistic(*arrays)` over episodes resampled with replacement."""
    n = len(arrays[0])
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        value = statistic(*(np.asarray(a)[index] for a in arrays))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


# ---- labels -------------------------------------------------------------------------------------
def _return(label: dict) -> float | None:
    if label.get("reward") is not None:
        return float(label["reward"])
    if label.get("success") is not None:
        return float(bool(label["success"]))
    return None


def _scale_category(score: float) -> int:
    return int(np.clip(np.rint(score), 1, 5))


def usable_reference(label: dict | None) -> bool:
    return bool(label) and label.get("valid", True) is not False and (label.get("success") is not None or label.get("score") is not None)


def _finite(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def false_positive_by_reference_score(pairs: list[tuple[dict, dict]]) -> dict[str, dict[str, Any]] | None:
    """For the reference's failures at each 1-5 score (1-4), the rate at which the backend said success: where a
    reward model's false positives fall (near misses or not). None when the reference gave no 1-5 scores."""
    if not any(h.get("score") is not None for h, _ in pairs):
        return None
    failures = [(h, b) for h, b in pairs if h.get("score") is not None and h.get("success") is False]
    by_score: dict[str, dict[str, Any]] = {}
    for s in (1, 2, 3, 4):
        said = [bool(b.get("success")) for h, b in failures if _scale_category(h["score"]) == s]
        by_score[str(s)] = rate(sum(said), len(said))
    return by_score


def audit_pairs(pairs: list[tuple[dict, dict]], resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """All agreement metrics of one backend, from (reference label, backend label) per episode."""
    out: dict[str, Any] = {"episodes": len(pairs), "invalid": sum(b.get("valid", True) is False for _, b in pairs)}

    scored = [(h["score"], b["score"]) for h, b in pairs if h.get("score") is not None and b.get("score") is not None]
    ref, est = (np.asarray(v, float) for v in zip(*scored)) if scored else (np.zeros(0), np.zeros(0))
    out["mae"] = {"value": _finite(mean_absolute_error(ref, est)) if scored else None,
                  "ci95": bootstrap_interval(mean_absolute_error, [ref, est], resamples, seed), "n": len(scored)}

    judged = [(bool(h["success"]), bool(b.get("success"))) for h, b in pairs if h.get("success") is not None]
    negatives = [b for h, b in judged if not h]
    positives = [b for h, b in judged if h]
    out["false_positive_rate"] = rate(sum(negatives), len(negatives))
    out["false_negative_rate"] = rate(sum(not b for b in positives), len(positives))
    out["false_positive_by_reference_score"] = false_positive_by_reference_score(pairs)

    returns = [(_return(h), _return(b)) for h, b in pairs if _return(h) is not None and _return(b) is not None]
    ref_r, est_r = (np.asarray(v, float) for v in zip(*returns)) if returns else (np.zeros(0), np.zeros(0))
    out["kendall_tau"] = {"value": _finite(kendall_tau(ref_r, est_r)), "p_value": _finite(kendall_p_value(ref_r, est_r)),
                          "n": len(returns), "ci95": bootstrap_interval(kendall_tau, [ref_r, est_r], resamples, seed)}

    usable = [(h, b) for h, b in pairs if (h.get("score") is not None or _return(h) is not None)]
    ref_key = "score" if usable and all(h.get("score") is not None for h, _ in usable) else "return"
    est_key = "score" if usable and all(b.get("score") is not None for _, b in usable) else "return"
    ref_v = np.asarray([h["score"] if ref_key == "score" else _return(h) for h, _ in usable], float)
    est_v = np.asarray([b["score"] if est_key == "score" else (_return(b) if _return(b) is not None else 0.0) for _, b in usable], float)
    credit, n_pairs = pairwise_accuracy(ref_v, est_v)

    def accuracy(a, b):
        c, n = pairwise_accuracy(a, b)
        return c / n if n else float("nan")

    out["pairwise_accuracy"] = {"value": credit / n_pairs if n_pairs else None, "credit": credit, "pairs": n_pairs,
                                "compares": {"reference": ref_key, "backend": est_key},
                                "ci95": bootstrap_interval(accuracy, [ref_v, est_v], resamples, seed) if n_pairs else None}

    def categories(labels: list[dict]) -> tuple[str, list, list]:
        if labels and all(x.get("score") is not None for x in labels):
            return "score", [_scale_category(x["score"]) for x in labels], [1, 2, 3, 4, 5]
        return "success", ["success" if x.get("success") else "failure" for x in labels], ["failure", "success"]

    ref_scale, ref_cat, rows = categories([h for h, _ in pairs])
    est_scale, est_cat, columns = categories([b for _, b in pairs])
    out["confusion"] = {"reference": ref_scale, "backend": est_scale, "rows": rows, "columns": columns,
                        "counts": confusion_matrix(ref_cat, est_cat, rows, columns)}
    return out


def audit_run(run_dir: str | Path, reference: str = REFERENCE, resamples: int = RESAMPLES, seed: int = 0,
              check_files: bool = True) -> dict[str, Any]:
    """The audit of every backend against `reference` over a run's sealed, complete episodes (their labels live in
    meta/episodes.jsonl); with `check_files`, `file_problems` names each missing or unreadable table or video."""
    run_dir = find_run(run_dir, AuditError)
    run = RecordedRun(run_dir)
    records = [r for r in run.records if not r.get("partial")]
    labelled = [r for r in records if usable_reference(r.get("labels", {}).get(reference))]
    trained = [r["labels"][TRAINING_LABEL] for r in records if "verify" in r.get("labels", {}).get(TRAINING_LABEL, {})]
    if not labelled:
        if trained:
            raise AuditError(f"The run '{run_dir}' verifies positives, and the human has answered none of its "
                             f"{len(records)} complete episodes' questions yet; audit it once they have.")
        raise AuditError(f"The run '{run_dir}' has no {reference} labels in its {len(records)} complete episodes; record a "
                         f"human-oracle run (the human labels every episode) to audit reward backends against.")
    backends = sorted({name for r in labelled for name in r["labels"] if name not in (reference, TRAINING_LABEL)})
    if not backends:
        raise AuditError(f"The run '{run_dir}' has {reference} labels but no other backend's labels; run the learned "
                         f"backends in shadow mode next to the {reference} to audit them.")
    result: dict[str, Any] = {"run_dir": str(run_dir), "reference": reference, "episodes": len(records),
                              "labelled_episodes": len(labelled), "bootstrap": {"resamples": resamples, "seed": seed},
                              "backends": {}, "file_problems": run.check_files() if check_files else []}
    for name in backends:
        pairs = [(r["labels"][reference], r["labels"][name]) for r in labelled if name in r["labels"]]
        result["backends"][name] = audit_pairs(pairs, resamples, seed)
    if trained:
        result["verify_positives"] = verify_summary(trained, backend=trained[-1]["backend"])
    return result


def verify_lines(result: dict) -> list[str]:
    """A verify-positives run's audit in words (nothing for other runs)."""
    v = result.get("verify_positives")
    if v is None:
        return []
    lines = [f"A verify-positives run: the {result['reference']} labelled only the successes {v['backend']} claimed and "
             f"the failures drawn for a check ({v['needed_human']} of {v['episodes']} episodes asked, {v['unverified']} "
             "unanswered), so the table's figures cover those episodes only."]
    fp, precision, fn = v["false_positive_share"], v["precision"], v["false_negative_share"]
    lines.append(f"  {v['backend']}: precision {_fmt(precision, percent=True)}, false-positive share "
                 f"{_fmt(fp, percent=True)} ({fp['count']} of {fp['n']} claimed successes rejected)"
                 + (f", false-negative share {_fmt(fn, percent=True)} ({fn['count']} of {fn['n']} checked failures)" if fn["n"] else ""))
    return lines


# ---- presentation -------------------------------------------------------------------------------
def _fmt(metric: dict | None, digits: int = 2, percent: bool = False) -> str:
    if not metric or metric.get("value") is None:
        return "-"
    scale = 100 if percent else 1
    unit = "%" if percent else ""
    text = f"{metric['value'] * scale:.{0 if percent else digits}f}{unit}"
    if metric.get("ci95"):
        lo, hi = metric["ci95"]
        text += f" [{lo * scale:.{0 if percent else digits}f}, {hi * scale:.{0 if percent else digits}f}]"
    return text


def problems_caption(problems: list[str]):
    """A table caption with a line per file problem (wrapped, never cropped, where wider than the table); None without any."""
    return Text("\n".join(problems), style="yellow", overflow="fold") if problems else None


def audit_table(result: dict):
    scope = ", the asked ones of a verify-positives run" if "verify_positives" in result else ""
    table = Table(title=f"Reward backends against the {result['reference']} ({result['labelled_episodes']} labelled episodes{scope}, 95% CI)",
                  caption=problems_caption(result.get("file_problems", [])), caption_justify="left")
    for column in ("backend", "episodes", "MAE (1-5)", "false pos.", "false neg.", "Kendall tau", "pairwise acc.", "invalid"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for name, m in result["backends"].items():
        fp, fn = m["false_positive_rate"], m["false_negative_rate"]
        table.add_row(name, str(m["episodes"]), _fmt(m["mae"]) + f" n={m['mae']['n']}",
                      _fmt(fp, percent=True) + f" {fp['count']}/{fp['n']}", _fmt(fn, percent=True) + f" {fn['count']}/{fn['n']}",
                      _fmt(m["kendall_tau"]), _fmt(m["pairwise_accuracy"], percent=True) + f" of {m['pairwise_accuracy']['pairs']}",
                      str(m["invalid"]))
    return table


def confusion_tables(result: dict) -> list:
    tables = []
    for name, m in result["backends"].items():
        c = m["confusion"]
        title = f"{name}: {result['reference']} {c['reference']} (rows) vs backend {c['backend']} (columns)"
        table = Table(title=title, min_width=len(title))
        table.add_column("")
        for col in c["columns"]:
            table.add_column(str(col), justify="right")
        for row, counts in zip(c["rows"], c["counts"]):
            table.add_row(str(row), *map(str, counts))
        tables.append(table)
    return tables


def plot_audit(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["backends"])
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 3.6 * len(names)), squeeze=False)
    for (ax_conf, ax_bar), name in zip(axes, names):
        m = result["backends"][name]
        c = m["confusion"]
        counts = np.asarray(c["counts"])
        ax_conf.imshow(counts, cmap="Blues")
        for (i, j), value in np.ndenumerate(counts):
            ax_conf.text(j, i, str(value), ha="center", va="center", color="black" if value <= counts.max() / 2 else "white")
        ax_conf.set(xticks=range(len(c["columns"])), xticklabels=c["columns"], yticks=range(len(c["rows"])),
                    yticklabels=c["rows"], xlabel=f"{name} ({c['backend']})", ylabel=f"{result['reference']} ({c['reference']})",
                    title=f"{name}: confusion")
        keys = [("false_positive_rate", "false pos."), ("false_negative_rate", "false neg."),
                ("pairwise_accuracy", "pairwise acc."), ("kendall_tau", "Kendall tau")]
        values = [m[k]["value"] if m[k]["value"] is not None else np.nan for k, _ in keys]
        # A percentile bootstrap interval need not contain the point value: clip the bars there.
        lows = [max(0.0, v - m[k]["ci95"][0]) if m[k].get("ci95") and v == v else 0 for (k, _), v in zip(keys, values)]
        highs = [max(0.0, m[k]["ci95"][1] - v) if m[k].get("ci95") and v == v else 0 for (k, _), v in zip(keys, values)]
        ax_bar.barh([label for _, label in keys], values, xerr=[lows, highs], color="tab:blue", alpha=0.7, capsize=4)
        for y, v in enumerate(values):
            if v == v:
                ax_bar.text(-0.95, y, f"{v:.2f}", va="center")
        ax_bar.axvline(0, color="grey", lw=0.8)
        mae = m["mae"]["value"]
        ax_bar.set(xlim=(-1, 1), title=f"{name}: MAE {mae:.2f} on 1-5" if mae is not None else f"{name}: no 1-5 scores")
        ax_bar.invert_yaxis()
    return save_figure(fig, path)


def write_audit(run_dir: str | Path, reference: str = REFERENCE, out_dir: str | Path | None = None,
                resamples: int = RESAMPLES, seed: int = 0) -> tuple[dict, Path, Path]:
    """Audit a run and write audit.json and audit.png (into the run directory by default)."""
    result = audit_run(run_dir, reference, resamples, seed)
    out = Path(out_dir) if out_dir else Path(result["run_dir"])
    json_path = out / "audit.json"
    write_json(json_path, result)
    png_path = plot_audit(result, out / "audit.png")
    return result, json_path, png_path


def summary(result: dict) -> dict[str, Any]:
    """One line per backend: the point values, for a compact JSON."""
    return {name: {"mae": m["mae"]["value"], "false_positive_rate": m["false_positive_rate"]["value"],
                   "false_negative_rate": m["false_negative_rate"]["value"], "kendall_tau": m["kendall_tau"]["value"],
                   "pairwise_accuracy": m["pairwise_accuracy"]["value"], "episodes": m["episodes"]}
            for name, m in result["backends"].items()}


def main_json(result: dict, json_path: Path, png_path: Path) -> str:
    out = {"reference": result["reference"], "labelled_episodes": result["labelled_episodes"],
           "json": str(json_path), "png": str(png_path), "backends": summary(result), "file_problems": result.get("file_problems", [])}
    if "verify_positives" in result:
        v = result["verify_positives"]
        out["verify_positives"] = {k: v[k] for k in ("backend", "episodes", "needed_human", "verified", "unverified", "rejected")}
        out["verify_positives"].update({k: v[k]["value"] for k in ("precision", "false_positive_share", "false_negative_share")})
    return json.dumps(out)
