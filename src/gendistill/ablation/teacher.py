"""The teacher ablation's table: one row per (variant, model), accuracy mean +- std over training seeds.

Variants (gendistill.ablation.variants, Ablations.teacher_variants): the paper's method (hard labels); + each
selection criterion (hard); + soft labels (the paper's set, KD on the teacher's logits); the random real subset of
the same IPC, hard and soft (labelled by the same teacher); the full real training set (hard).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .pda import summarise_over_seeds


def teacher_ablation_table(rows: list[dict], variants: list[dict]) -> pd.DataFrame:
    """`rows`: variant, model, seed, path (an evaluation JSON), reused_from_run; `variants`: name, label, set,
    labels, selection, oversample. Rows keep the order of `variants`; std is over seeds (ddof=0)."""
    info = {v["name"]: v for v in variants}
    recs = []
    for r in rows:
        m = json.loads(Path(r["path"]).read_text())
        v = info[r["variant"]]
        regime = m.get("labels", "hard")
        if regime != v["labels"]:
            raise ValueError(f"{r['path']}: trained with {regime} labels, the variant {v['name']} is {v['labels']}")
        recs.append(
            {
                "variant": v["name"],
                "row": v["label"],
                "set": v["set"],
                "labels": regime,
                "selection": v["selection"],
                "oversample": v["oversample"],
                "model": m["model_label"],
                "seed": m["seed"],
                "accuracy": m["accuracy"],
                "n_train": m["n_train"],
                "chance": m["chance"],
                "reused_from_run": r.get("reused_from_run", False),
            }
        )
    out = summarise_over_seeds(
        pd.DataFrame(recs),
        ["row", "set", "labels", "selection", "oversample", "n_train", "chance", "reused_from_run"],
    )
    paper = {r.model: r.accuracy_mean for r in out.itertuples() if r.variant == "paper_hard"}
    out["minus_paper_points"] = [
        round(100 * (r.accuracy_mean - paper[r.model]), 2) if r.model in paper else np.nan for r in out.itertuples()
    ]
    cols = [
        "variant",
        "row",
        "set",
        "labels",
        "selection",
        "oversample",
        "model",
        "accuracy",
        "accuracy_mean",
        "accuracy_std",
        "n_seeds",
        "per_seed",
        "minus_paper_points",
        "n_train",
        "chance",
        "reused_from_run",
    ]
    return out[cols]


def teacher_ablation_plot(table: pd.DataFrame, path: str) -> None:
    """Bars per row (error bars = std over seeds): generated sets hard / soft, real subsets hard / soft, full."""
    from ..report.plots import plt, save_figure  # deferred: matplotlib is heavy; the table needs none

    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(
        1, len(models), figsize=(max(6.0, 0.9 * len(table) / max(len(models), 1) + 3) * len(models), 4.2), squeeze=False
    )
    colour = {
        ("distilled", "hard"): "#d95f02",
        ("distilled", "soft"): "#e7298a",
        ("random_subset", "hard"): "#7570b3",
        ("random_subset", "soft"): "#1b9e77",
        ("full", "hard"): "#666666",
    }
    for ax, model in zip(axes[0], models):
        t = table[table["model"] == model].reset_index(drop=True)
        x = np.arange(len(t))
        mean, std = 100 * t["accuracy_mean"].to_numpy(float), 100 * t["accuracy_std"].to_numpy(float)
        ax.bar(
            x,
            mean,
            yerr=std,
            capsize=4,
            color=[colour.get((s, lab), "#999999") for s, lab in zip(t["set"], t["labels"])],
        )
        for xi, m, s in zip(x, mean, std):
            ax.text(xi, m + s + 1, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
        labels = [f"{r.row}\n({r.labels})" for r in t.itertuples()]
        ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
        if len(t):
            chance = 100 * float(t["chance"].iloc[0])
            ax.axhline(chance, color="grey", ls="--", lw=1)
        ax.set_ylim(0, 108)
        ax.set_ylabel("test accuracy (%), mean +- std over seeds")
        ax.set_title(f"{model}: teacher ablation (selection, soft labels)", fontsize=10)
    save_figure(path, fig)
