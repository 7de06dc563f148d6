"""Tidy results: one row per (set, model, seed), a summary (mean +- std over seeds) and per-class accuracy.

Std is the population std over training seeds (numpy's default, ddof=0), as the dataset-distillation
literature reports it (``np.std(accs)`` in the DC/DM/MTT evaluation code).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path

SET_ORDER = ["distilled", "random_subset", "full"]


def load_metrics(paths: list[str]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def rows_frame(metrics: list[dict]) -> pd.DataFrame:
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
            "labels": r.get("labels", "hard"),
        }
        for r in metrics
    ]  # label regime: hard, or soft (teacher's logits)
    df = pd.DataFrame(
        rows,
        columns=[
            "set",
            "model",
            "seed",
            "accuracy",
            "n_train",
            "n_test",
            "epochs",
            "train_seconds",
            "chance",
            "labels",
        ],
    )
    return order(df).reset_index(drop=True)


def order(df: pd.DataFrame) -> pd.DataFrame:
    """Sets in the order distilled, random_subset, full; models and seeds as they come / ascending."""
    key = {s: i for i, s in enumerate(SET_ORDER)}
    cols = [c for c in ("model", "seed", "class_index") if c in df.columns]
    return df.assign(_k=df["set"].map(key)).sort_values(["_k", *cols], kind="stable").drop(columns="_k")


def _std(x) -> float:
    return float(np.std(np.asarray(x, dtype=float))) if len(x) else float("nan")


def fmt(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} +- {100 * std:.2f}"


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, model): mean, std (ddof=0), min, max over seeds; and, per model, how the set compares
    with the random real subset (points) and with the full-data ceiling (fraction)."""
    g = df.groupby(["set", "model"], sort=False)
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
        labels=("labels", "first"),
    ).reset_index()
    out = order(out).reset_index(drop=True)
    out["accuracy"] = [fmt(m, s) for m, s in zip(out["accuracy_mean"], out["accuracy_std"])]
    ref = {(r.set, r.model): r.accuracy_mean for r in out.itertuples()}
    out["minus_random_subset_points"] = [
        round(100 * (r.accuracy_mean - ref[("random_subset", r.model)]), 2)
        if ("random_subset", r.model) in ref
        else np.nan
        for r in out.itertuples()
    ]
    out["fraction_of_full"] = [
        round(r.accuracy_mean / ref[("full", r.model)], 4) if ref.get(("full", r.model)) else np.nan
        for r in out.itertuples()
    ]
    return out


def per_class_frame(metrics: list[dict], class_names: dict[int, str]) -> pd.DataFrame:
    """Per (set, model, class): accuracy mean/std over seeds; for the distilled set also the gap to the random
    real subset of the same IPC (negative = the generator's images teach this class worse than real ones)."""
    rows = [
        {
            "set": r["set"],
            "model": r["model_label"],
            "seed": r["seed"],
            "class_index": int(c),
            "class_name": class_names.get(int(c), str(c)),
            "accuracy": a,
        }
        for r in metrics
        for c, a in r.get("per_class_accuracy", {}).items()
    ]
    cols = ["set", "model", "class_index", "class_name", "accuracy_mean", "accuracy_std", "n_seeds"]
    if not rows:
        return pd.DataFrame(columns=[*cols, "minus_random_subset_points"])
    df = pd.DataFrame(rows)
    out = (
        df.groupby(["set", "model", "class_index", "class_name"], sort=False)
        .agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", _std), n_seeds=("seed", "count"))
        .reset_index()
    )
    out = order(out).reset_index(drop=True)
    ref = {(r.model, r.class_index): r.accuracy_mean for r in out.itertuples() if r.set == "random_subset"}
    out["minus_random_subset_points"] = [
        round(100 * (r.accuracy_mean - ref[(r.model, r.class_index)]), 2)
        if r.set == "distilled" and (r.model, r.class_index) in ref
        else np.nan
        for r in out.itertuples()
    ]
    return out


def write_csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(Path(path)) as tmp:
        df.to_csv(tmp, index=False)


def write_tables(
    paths: list[str],
    table_csv: str,
    summary_csv: str,
    per_class_csv: str | None = None,
    class_names: dict[int, str] | None = None,
) -> pd.DataFrame:
    metrics = load_metrics(paths)
    df = rows_frame(metrics)
    summary = summarise(df)
    write_csv(df, table_csv)
    write_csv(summary, summary_csv)
    if per_class_csv:
        write_csv(per_class_frame(metrics, class_names or {}), per_class_csv)
    return summary
