"""Tidy results: one row per (set, model, seed) and a summary (mean +- std over seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..atomic import atomic_path


def load_rows(paths: list[str]) -> pd.DataFrame:
    rows = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        rows.append({"set": r["set"], "model": r["model_label"], "seed": r["seed"], "accuracy": r["accuracy"],
                     "n_train": r["n_train"], "n_test": r["n_test"], "epochs": r["recipe"]["epochs"],
                     "train_seconds": r["train_seconds"], "chance": r["chance"]})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["set", "model"], sort=False)
    out = g.agg(accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"), n_seeds=("seed", "count"),
                n_train=("n_train", "first"), chance=("chance", "first")).reset_index()
    out["accuracy_std"] = out["accuracy_std"].fillna(0.0)
    out["accuracy"] = [f"{100 * m:.2f} +- {100 * s:.2f}" for m, s in zip(out["accuracy_mean"], out["accuracy_std"])]
    return out


def write_tables(paths: list[str], table_csv: str, summary_csv: str) -> pd.DataFrame:
    df = load_rows(paths)
    summary = summarise(df)
    with atomic_path(Path(table_csv)) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(Path(summary_csv)) as tmp:
        summary.to_csv(tmp, index=False)
    return summary
