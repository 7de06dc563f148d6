"""Evaluation plots (matplotlib, Agg backend, PNG) and small self-contained HTML tables for the report."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..atomic import atomic_path, write_text  # noqa: E402
from ..evaluation.runs import is_method_set  # noqa: E402

SET_LABELS = {
    "distilled": "distilled (generated)",
    "random_subset": "random real subset (same IPC)",
    "kmeans_real": "k-means real (same IPC)",
    "rded": "RDED crops (same IPC)",
    "full": "full real training set",
}
SET_COLOURS = {
    "distilled": "#d95f02",
    "random_subset": "#7570b3",
    "kmeans_real": "#e6ab02",
    "rded": "#66a61e",
    "full": "#1b9e77",
}


def save_figure(path: str, fig) -> None:
    """Write a matplotlib figure as PNG (atomically, without a timestamp in its metadata) and close it."""
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _runs(summary: pd.DataFrame) -> list[tuple]:
    """(set, labels, train_augment) of each summary row, in set order; runs in one label regime with augmentation
    keep the plain set names."""
    if "labels" not in summary.columns:
        summary = summary.assign(labels="hard")
    if "train_augment" not in summary.columns:
        summary = summary.assign(train_augment=True)
    runs = list(dict.fromkeys(zip(summary["set"], summary["labels"], summary["train_augment"].astype(bool))))
    # the generation methods' sets (method:<name>) right after the distilled set, in their order (sort is stable)
    order = list(SET_LABELS)

    def key(run: tuple) -> float:
        if is_method_set(run[0]):
            return order.index("distilled") + 0.5
        return order.index(run[0]) if run[0] in order else 99

    return sorted(runs, key=key)


def set_colour(name: str, methods: list[str]) -> str:
    """A set's bar colour: its own, a generation method's from a qualitative map (by its place among `methods`)."""
    if is_method_set(name):
        return plt.get_cmap("tab10")(methods.index(name) % 10)
    return SET_COLOURS.get(name, "#999999")


def accuracy_plot(summary: pd.DataFrame, path: str, title: str = "") -> None:
    """Grouped bars: x = evaluation model, one bar per evaluation run (set; label regime and no augmentation when
    the run has several), error bars = std over seeds."""
    models = list(dict.fromkeys(summary["model"]))
    runs = _runs(summary)
    methods = list(dict.fromkeys(r[0] for r in runs if is_method_set(r[0])))
    several = len({(r[1], r[2]) for r in runs if r[0] != "full"}) > 1
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 * len(models) * max(len(runs), 1) / 2 + 2), 3.8))
    x = np.arange(len(models))
    for i, (s, labels, aug) in enumerate(runs):
        sub = summary[summary["set"] == s]
        if "labels" in summary.columns:
            sub = sub[(sub["labels"] == labels) & (sub["train_augment"].astype(bool) == aug)]
        sub = sub.set_index("model").reindex(models)
        mean, std = 100 * sub["accuracy_mean"].to_numpy(), 100 * sub["accuracy_std"].to_numpy()
        pos = x - 0.4 + width * (i + 0.5)
        label = SET_LABELS.get(s, s) + (f" [{labels}{'' if aug else ', no aug'}]" if several and s != "full" else "")
        hatch = {"hard": None, "soft": "//", "kd": ".."}.get(labels) if several else None
        ax.bar(
            pos,
            mean,
            width,
            yerr=std,
            capsize=4,
            color=set_colour(s, methods),
            alpha=1.0 if aug else 0.5,
            hatch=hatch,
            label=label,
        )
        for p, m, sd in zip(pos, mean, std):
            if np.isfinite(m):
                ax.text(p, m + sd + 1, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    chance = 100 * float(summary["chance"].iloc[0]) if len(summary) else 0
    ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.1f}%)")
    ax.set_xticks(x, models)
    ax.set_ylabel("test accuracy (%), mean +- std over seeds")
    ax.set_ylim(0, 105)
    ax.set_title(title or "Test accuracy by training set and model")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(path, fig)


def per_class_plot(per_class: pd.DataFrame, path: str, max_classes: int = 60) -> None:
    """Distilled-set accuracy per class (bars, error bars over seeds), sorted worst first, with the random real
    subset's accuracy on the same class as a marker: where the bar is far below the marker, the generator fails
    that class. Above `max_classes` classes only the worst and the best are shown."""
    if "labels" in per_class.columns and len(per_class):  # the run's own regime, with augmentation
        own = per_class[(per_class["set"] == "distilled") & per_class["train_augment"].astype(bool)]
        if len(own):
            per_class = per_class[
                (per_class["labels"] == own["labels"].iloc[0]) & per_class["train_augment"].astype(bool)
            ]
    models = list(dict.fromkeys(per_class.loc[per_class["set"] == "distilled", "model"]))
    fig, axes = plt.subplots(len(models) or 1, 1, figsize=(10, 3.4 * max(len(models), 1)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        d = per_class[(per_class["set"] == "distilled") & (per_class["model"] == model)]
        d = d.sort_values(["accuracy_mean", "class_index"], kind="stable")
        if len(d) > max_classes:
            half = max_classes // 2
            d = pd.concat([d.head(half), d.tail(max_classes - half)])
        ref = per_class[(per_class["set"] == "random_subset") & (per_class["model"] == model)]
        ref = ref.set_index("class_index")["accuracy_mean"].reindex(d["class_index"])
        x = np.arange(len(d))
        ax.bar(
            x,
            100 * d["accuracy_mean"],
            yerr=100 * d["accuracy_std"],
            capsize=2,
            color=SET_COLOURS["distilled"],
            label="distilled",
        )
        if ref.notna().any():
            ax.scatter(
                x,
                100 * ref.to_numpy(),
                marker="_",
                s=160,
                color=SET_COLOURS["random_subset"],
                zorder=3,
                label="random real subset",
            )
        labels = [f"{n}" for n in d["class_name"]]
        ax.set_xticks(
            x,
            labels,
            rotation=60 if len(d) > 8 else 0,
            ha="right" if len(d) > 8 else "center",
            fontsize=7 if len(d) > 20 else 9,
        )
        ax.set_ylim(0, 105)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{model}: per-class test accuracy after training on the distilled set (worst first)")
        ax.legend(fontsize=8)
    save_figure(path, fig)


TABLE_CSS = (
    "body{font-family:sans-serif;font-size:13px;margin:8px}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
    "td:first-child,th:first-child{text-align:left}caption{font-weight:bold;padding:4px;text-align:left}"
)


def html_table(df: pd.DataFrame, path: str, title: str, note: str = "") -> None:
    """A self-contained HTML page with one table (the report shows HTML items inline)."""
    table = df.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0, escape=True)
    table = table.replace(
        '<table class="dataframe">', f'<table class="dataframe"><caption>{html.escape(title)}</caption>', 1
    )
    body = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{TABLE_CSS}</style></head><body>{table}"
    )
    if note:
        body += f"<p>{html.escape(note)}</p>"
    write_text(path, body + "</body></html>\n")


def recognition_plot(table: pd.DataFrame, path: str) -> None:
    """Bars: % of each class's generated images recognised as that class (and overall); dashed line: chance."""
    t = table.copy()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(t) + 2), 3.6))
    x = np.arange(len(t))
    colours = ["#1b9e77" if n == "overall" else "#d95f02" for n in t["class_name"]]
    ax.bar(x, 100 * t["recognised_fraction"].to_numpy(dtype=float), color=colours)
    for xi, v in zip(x, 100 * t["recognised_fraction"].to_numpy(dtype=float)):
        ax.text(xi, v + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    if len(t):
        chance = 100 * float(t["chance"].iloc[0])
        ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance ({chance:.1f}%)")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks(
        x,
        list(t["class_name"]),
        rotation=60 if len(t) > 8 else 0,
        ha="right" if len(t) > 8 else "center",
        fontsize=7 if len(t) > 20 else 9,
    )
    ax.set_ylim(0, 110)
    ax.set_ylabel("recognised as its prompt's class (%)")
    ax.set_title("Generated images recognised by a classifier trained on real data")
    save_figure(path, fig)
