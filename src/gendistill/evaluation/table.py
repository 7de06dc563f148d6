"""Tidy results: one row per (evaluation run, model, seed), a summary per (run, model) with its 95 % interval, the
difference to the random real subset in the same regime with its interval, and DD-Ranking's scores; and
per-class accuracy.

Std is the population std over training seeds (numpy's default, ddof=0), as the dataset-distillation literature
reports it (``np.std(accs)`` in the DC/DM/MTT evaluation code); intervals are Student-t intervals over the seeds
(evaluation/stats.py). A run is a set (distilled, random_subset, kmeans_real, rded, full, and a generation method's
method:<name>) in a label regime (hard, soft, kd), with or without training augmentation (evaluation/runs.py). Per
seed, a distilled row (a generation method's, a selection baseline's) holds its difference to the random subset of
the same seed, regime and augmentation, and DD-Ranking's HLR, IOR, LRS and ARS (evaluation/scores.py, on
fractions); the summary gives their means and intervals over the seeds. HLR's acc(real, hard) is the full-data
run of the same seed, else the mean of the full-data runs (fewer seeds than the sets), else
evaluation.baselines.full_accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from .runs import is_method_set
from .scores import (
    DEFAULT_WEIGHT,
    augmentation_robust_score,
    hard_label_recovery,
    improvement_over_random,
    label_robust_score,
)
from .stats import difference, mean_interval

SET_ORDER = ["distilled", "random_subset", "kmeans_real", "rded", "full"]  # the generation methods after distilled
# the sets that DD-Ranking's scores rate (a distilled set, and the selection baselines as the field rates them;
# the generation methods' sets too: scored()); the random subset and the full data are their references
SCORED_SETS = ("distilled", "kmeans_real", "rded")


def scored(set_name: str) -> bool:
    """DD-Ranking's scores rate this set (SCORED_SETS, a generation method's)."""
    return set_name in SCORED_SETS or is_method_set(set_name)


ROW_COLUMNS = ["set", "model", "seed", "accuracy", "n_train", "n_test", "epochs", "train_seconds", "chance", "labels"]
ROW_EXTRA = [
    "train_augment",
    "eval",
    "accuracy_kind",
    "final_accuracy",
    "protocol",
    "recipe",
    "vs_random",
    "hlr",
    "ior",
    "lrs",
    "ars",
]
SCORE_NOTE = (
    "DD-Ranking's scores (arXiv 2505.13300) from accuracies as fractions: HLR = acc(full, hard) - acc(distilled, "
    "hard), IOR = acc(distilled) - acc(random subset) in the same regime and recipe, LRS = (e^a - e^-1) / (e - "
    "e^-1) with a = w IOR - (1 - w) HLR, ARS the same on beta = g (with aug) + (1 - g) (without); per seed, then "
    "mean and 95 % interval. They compare sets only under the same evaluation protocol."
)


def load_metrics(paths: list[str]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def rows_frame(
    metrics: list[dict],
    protocol: str | None = None,
    weights: dict | None = None,
    full_accuracy: float | None = None,
) -> pd.DataFrame:
    """One row per evaluation (set, model, seed, regime, augmentation), with the per-seed comparisons."""
    rows = [
        {
            "set": r["set"],
            "model": r["model_label"],
            "seed": r["seed"],
            "accuracy": r["accuracy"],
            "n_train": r["n_train"],
            "n_test": r["n_test"],
            "epochs": r["recipe"]["epochs"],
            "train_seconds": r["train_seconds"],
            "chance": r["chance"],
            "labels": r.get("labels", "hard"),  # label regime: hard, soft (fixed teacher logits), kd (online)
            "train_augment": bool(r["recipe"].get("train_augment", True)),
            "eval": r.get("eval_key", r["set"]),
            "accuracy_kind": r.get("accuracy_kind", "final"),
            "final_accuracy": r.get("final_accuracy", r["accuracy"]),
            "protocol": protocol or "",
            "recipe": json.dumps(r["recipe"], sort_keys=True),
        }
        for r in metrics
    ]
    df = pd.DataFrame(rows, columns=ROW_COLUMNS + ROW_EXTRA[:6])
    df = order(df).reset_index(drop=True)
    return with_seed_scores(df, weights or {}, full_accuracy)


def order(df: pd.DataFrame) -> pd.DataFrame:
    """Sets in SET_ORDER (distilled, the generation methods as they come, random_subset, the selection baselines,
    full); models and seeds as they come / ascending."""
    key = {s: float(i) for i, s in enumerate(SET_ORDER)}
    methods = [s for s in dict.fromkeys(df["set"]) if is_method_set(s)]
    key.update({s: key["distilled"] + (1 + i) / (1 + len(methods)) for i, s in enumerate(methods)})
    cols = [c for c in ("model", "seed", "class_index") if c in df.columns]
    return df.assign(_k=df["set"].map(key)).sort_values(["_k", *cols], kind="stable").drop(columns="_k")


def _by_seed(df: pd.DataFrame) -> dict:
    """(set, model, labels, train_augment) -> {seed: accuracy}."""
    acc = {}
    for r in df.itertuples():
        acc.setdefault((r.set, r.model, r.labels, bool(r.train_augment)), {})[int(r.seed)] = float(r.accuracy)
    return acc


def _primary(df: pd.DataFrame) -> str:
    """The run's own label regime: the random subset's regime in its first row, else the distilled set's."""
    for s in ("random_subset", "distilled"):
        d = df[df["set"] == s]
        if len(d):
            return str(d["labels"].iloc[0])
    return "hard"


def _random_of(acc: dict, model: str, labels: str, aug: bool, primary: str) -> dict:
    """The random real subset to compare with: the same regime and augmentation, else the run's own."""
    return acc.get(("random_subset", model, labels, aug)) or acc.get(("random_subset", model, primary, True)) or {}


def _safe(fn, *args) -> float:
    if any(isinstance(a, float) and math.isnan(a) for a in args):
        return math.nan
    return fn(*args)


def with_seed_scores(df: pd.DataFrame, weights: dict, full_accuracy: float | None) -> pd.DataFrame:
    """Add per-seed vs_random, hlr, ior, lrs (rows of SCORED_SETS with augmentation) and ars (same, with .noaug
    runs)."""
    acc, primary = _by_seed(df), _primary(df)
    w_lrs, w_ars = weights.get("lrs_weight", DEFAULT_WEIGHT), weights.get("ars_weight", DEFAULT_WEIGHT)
    out = {c: [] for c in ROW_EXTRA[6:]}
    for r in df.itertuples():
        seed, aug, nan = int(r.seed), bool(r.train_augment), math.nan
        rand = _random_of(acc, r.model, r.labels, aug, primary) if r.set != "random_subset" else {}
        vs = r.accuracy - rand[seed] if seed in rand else nan
        hlr = ior = lrs = ars = nan
        if scored(r.set) and aug:
            full_runs = acc.get(("full", r.model, "hard", True), {})
            # acc(real, hard): the full-data run of the same seed, else the mean of its runs, else a given figure
            full = full_runs.get(seed, float(np.mean(list(full_runs.values()))) if full_runs else nan)
            if not full_runs and full_accuracy is not None:
                full = float(full_accuracy)
            hard = acc.get((r.set, r.model, "hard", True), {}).get(seed, nan)
            same_rand = acc.get(("random_subset", r.model, r.labels, True), {})
            ior = _safe(improvement_over_random, r.accuracy, same_rand.get(seed, nan))
            hlr = _safe(hard_label_recovery, full, hard)
            lrs = _safe(lambda h, i: label_robust_score(h, i, w_lrs), hlr, ior)
            noaug = acc.get((r.set, r.model, r.labels, False), {}).get(seed, nan)
            rand_noaug = acc.get(("random_subset", r.model, r.labels, False), {}).get(seed, nan)
            ars = _safe(
                lambda *a: augmentation_robust_score(*a, w_ars),
                r.accuracy,
                same_rand.get(seed, nan),
                noaug,
                rand_noaug,
            )
        for c, v in zip(ROW_EXTRA[6:], (vs, hlr, ior, lrs, ars)):
            out[c].append(v)
    return df.assign(**out, lrs_weight=w_lrs, ars_weight=w_ars)


def _std(x) -> float:
    return float(np.std(np.asarray(x, dtype=float))) if len(x) else float("nan")


def fmt(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} +- {100 * std:.2f}"


def _points(x: float) -> float:
    return round(100 * x, 2) if math.isfinite(x) else np.nan


GROUP = ["set", "model", "labels", "train_augment"]
SUMMARY_COLUMNS = [
    "set",
    "model",
    "accuracy_mean",
    "accuracy_std",
    "accuracy_min",
    "accuracy_max",
    "n_seeds",
    "n_train",
    "epochs",
    "chance",
    "train_seconds_mean",
    "labels",
    "accuracy",
    "minus_random_subset_points",
    "fraction_of_full",
]


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, model, label regime, augmentation): mean, std (ddof=0), min, max and the 95 % interval
    over seeds; per model, the set against the random real subset in the same regime (points; the difference's
    interval paired by seed where the seeds pair, and its verdict), against the full-data ceiling (fraction), and
    DD-Ranking's scores (mean and interval of the per-seed values)."""
    if "train_augment" not in df.columns:
        df = df.assign(train_augment=True)
    g = df.groupby(GROUP, sort=False)
    out = g.agg(
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", _std),
        accuracy_min=("accuracy", "min"),
        accuracy_max=("accuracy", "max"),
        n_seeds=("seed", "count"),
        n_train=("n_train", "first"),
        epochs=("epochs", "first"),
        chance=("chance", "first"),
        train_seconds_mean=("train_seconds", "mean"),
    ).reset_index()
    for c in ("eval", "accuracy_kind", "protocol", "recipe", "lrs_weight", "ars_weight"):
        if c in df.columns:
            out[c] = g[c].first().to_numpy()
    out = order(out).reset_index(drop=True)
    out["accuracy"] = [fmt(m, s) for m, s in zip(out["accuracy_mean"], out["accuracy_std"])]
    acc, primary = _by_seed(df), _primary(df)
    ivs = [mean_interval(acc[(r.set, r.model, r.labels, bool(r.train_augment))].values()) for r in out.itertuples()]
    diffs = []
    for r in out.itertuples():
        rand = _random_of(acc, r.model, r.labels, bool(r.train_augment), primary)
        own = acc[(r.set, r.model, r.labels, bool(r.train_augment))]
        diffs.append(difference(own, rand) if rand and r.set != "random_subset" else None)
    full = {r.model: r.accuracy_mean for r in out.itertuples() if r.set == "full"}
    ref = {
        (r.model, r.labels, bool(r.train_augment)): r.accuracy_mean
        for r in out.itertuples()
        if r.set == "random_subset"
    }

    def ref_of(r):
        return ref.get((r.model, r.labels, bool(r.train_augment)), ref.get((r.model, primary, True)))

    out["minus_random_subset_points"] = [
        round(100 * (r.accuracy_mean - ref_of(r)), 2) if ref_of(r) is not None else np.nan for r in out.itertuples()
    ]
    out["fraction_of_full"] = [
        round(r.accuracy_mean / full[r.model], 4) if full.get(r.model) else np.nan for r in out.itertuples()
    ]
    out["accuracy_ci_low"] = [iv.low for iv in ivs]
    out["accuracy_ci_high"] = [iv.high for iv in ivs]
    out["vs_random_ci_low_points"] = [_points(d.low) if d else np.nan for d in diffs]
    out["vs_random_ci_high_points"] = [_points(d.high) if d else np.nan for d in diffs]
    out["vs_random_paired"] = [d.paired if d else np.nan for d in diffs]
    out["vs_random"] = [d.verdict if d else "" for d in diffs]
    if "lrs" in df.columns:
        for score in ("hlr", "ior", "lrs", "ars"):
            per = {k: d[score].to_numpy(float) for k, d in df.groupby(GROUP, sort=False)}
            ivs = [mean_interval(per[(r.set, r.model, r.labels, r.train_augment)]) for r in out.itertuples()]
            out[score] = [iv.mean for iv in ivs]
            if score in ("lrs", "ars"):
                out[f"{score}_ci_low"] = [iv.low for iv in ivs]
                out[f"{score}_ci_high"] = [iv.high for iv in ivs]
    extra = [c for c in out.columns if c not in SUMMARY_COLUMNS]
    return out[SUMMARY_COLUMNS + extra]


def per_class_frame(metrics: list[dict], class_names: dict[int, str]) -> pd.DataFrame:
    """Per (set, model, class): accuracy mean/std over seeds; for the distilled set (and the selection baselines)
    also the gap to the random real subset of the same IPC (negative = the set teaches this class worse).
    Runs in other label regimes or without augmentation (evaluation/runs.py) are rows of their own."""
    rows = [
        {
            "set": r["set"],
            "model": r["model_label"],
            "seed": r["seed"],
            "class_index": int(c),
            "class_name": class_names.get(int(c), str(c)),
            "accuracy": a,
            "labels": r.get("labels", "hard"),
            "train_augment": bool(r["recipe"].get("train_augment", True)),
        }
        for r in metrics
        for c, a in r.get("per_class_accuracy", {}).items()
    ]
    cols = ["set", "model", "class_index", "class_name", "accuracy_mean", "accuracy_std", "n_seeds"]
    if not rows:
        return pd.DataFrame(columns=[*cols, "minus_random_subset_points", "labels", "train_augment"])
    df = pd.DataFrame(rows)
    keys = ["set", "model", "labels", "train_augment", "class_index", "class_name"]
    out = (
        df.groupby(keys, sort=False)
        .agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", _std), n_seeds=("seed", "count"))
        .reset_index()
    )
    out = order(out).reset_index(drop=True)
    ref = {
        (r.model, r.labels, r.train_augment, r.class_index): r.accuracy_mean
        for r in out.itertuples()
        if r.set == "random_subset"
    }
    out["minus_random_subset_points"] = [
        round(100 * (r.accuracy_mean - ref[(r.model, r.labels, r.train_augment, r.class_index)]), 2)
        if scored(r.set) and (r.model, r.labels, r.train_augment, r.class_index) in ref
        else np.nan
        for r in out.itertuples()
    ]
    return out[[*cols, "minus_random_subset_points", "labels", "train_augment"]]


def write_csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(Path(path)) as tmp:
        df.to_csv(tmp, index=False)


def write_tables(
    paths: list[str],
    table_csv: str,
    summary_csv: str,
    per_class_csv: str | None = None,
    class_names: dict[int, str] | None = None,
    protocol: str | None = None,
    scores: dict | None = None,
    full_accuracy: float | None = None,
    making: dict[str, float] | None = None,
) -> pd.DataFrame:
    """The tables of a run's evaluations; `making`: set -> wall seconds its jobs took to make it (the summary's
    make_wall_seconds; none for a set drawn in its evaluation jobs: the random subset, the full data)."""
    metrics = load_metrics(paths)
    df = rows_frame(metrics, protocol, scores or {}, full_accuracy)
    summary = summarise(df)
    summary["make_wall_seconds"] = [
        round(v, 1) if math.isfinite(v) else np.nan
        for v in summary["set"].map(lambda x: (making or {}).get(x, math.nan))
    ]
    write_csv(df, table_csv)
    write_csv(summary, summary_csv)
    if per_class_csv:
        write_csv(per_class_frame(metrics, class_names or {}), per_class_csv)
    return summary


def _interval(low: float, high: float, scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"[{f.format(scale * low)}, {f.format(scale * high)}]"


def display_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as the report shows it: accuracy (%) mean +- std and its 95 % interval, the difference to the
    random real subset in the same regime (points) with its interval and verdict, and DD-Ranking's scores."""
    s = summary
    has = set(s.columns)
    out = pd.DataFrame(
        {
            "set": s["set"],
            "labels": s.get("labels", "hard"),
            "train aug": s["train_augment"].map({True: "yes", False: "no"}) if "train_augment" in has else "yes",
            "model": s["model"],
            "accuracy (%)": s["accuracy"],
            "95% CI": [
                _interval(a, b) for a, b in zip(s.get("accuracy_ci_low", np.nan), s.get("accuracy_ci_high", np.nan))
            ]
            if "accuracy_ci_low" in has
            else "",
            "seeds": s["n_seeds"],
            "vs random (points)": [f"{v:+.1f}" if math.isfinite(v) else "" for v in s["minus_random_subset_points"]],
        }
    )
    if "vs_random" in has:
        out["vs random 95% CI"] = [
            _interval(a, b, 1.0, sign=True) for a, b in zip(s["vs_random_ci_low_points"], s["vs_random_ci_high_points"])
        ]
        out["verdict"] = s["vs_random"].fillna("")
    for score in ("hlr", "ior", "lrs", "ars"):
        if score in has:
            out[score.upper()] = [f"{v:.3f}" if math.isfinite(v) else "" for v in s[score]]
            if f"{score}_ci_low" in has:
                out[f"{score.upper()} 95% CI"] = [
                    _interval(a, b, 1.0, 3) for a, b in zip(s[f"{score}_ci_low"], s[f"{score}_ci_high"])
                ]
    if "make_wall_seconds" in has:
        out["made in (s)"] = [f"{v:.0f}" if math.isfinite(v) else "" for v in s["make_wall_seconds"]]
    for c, name in (("epochs", "epochs"), ("accuracy_kind", "accuracy"), ("protocol", "protocol")):
        if c in has:
            out[name] = s[c].fillna("")
    return out


DISPLAY_NOTE = (
    "Accuracy: mean +- std over training seeds (std ddof=0); 95% CI: Student-t interval of the mean (ddof=1). "
    "vs random: accuracy minus the random real subset's of the same IPC, label regime and augmentation (points); "
    "its interval is paired by seed where the seeds pair (else Welch's); 'not distinguishable' = the interval "
    "contains 0. " + SCORE_NOTE
)
