"""The PDA ablation: sets that differ only in images generated per class and augmented copies per image.

`build_variant` makes one variant's set from per-class pools of generated images: the first n_generated images
of each class (their seeds depend on class and image index only, so they are the images any run with that
count would sample), each followed by n_aug copies from the augment stage's own code and per-copy seeds. So
"2 generated x (1 + 4)" and "2 generated x (1 + 0)" share their 2 originals, and "10 generated x (1 + 0)"
contains them. `ablation_table` summarises the evaluations: mean +- std over training seeds per variant, beside
random real subsets of the same IPC.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..distilled.augment import augment_class
from ..distilled.package import package
from ..imageio import load_png, save_png
from ..layout import RECORDS, read_records


def build_variant(
    pool_dirs: list[str],
    variant: dict,
    aug_params: dict,
    seeds_by_id: dict,
    class_names: list[str],
    mean,
    std,
    out_aug_dir: Path,
    out_pt: str,
    out_manifest: str,
    out_folder: str,
) -> dict:
    n_aug = int(variant["n_aug"])
    params = {**aug_params, "n_aug": n_aug}
    with atomic_path(Path(out_aug_dir)) as tmp:
        tmp.mkdir(parents=True)
        for d in sorted(pool_dirs, key=lambda p: Path(p).name):
            d = Path(d)
            # a class's own count (`per_class`: class id -> images, a generation method's set), else n_generated
            n = int((variant.get("per_class") or {}).get(d.name, variant["n_generated"]))
            src = read_records(d)
            recs = sorted(src["images"], key=lambda r: r["image_index"])[:n]
            if len(recs) < n:
                raise RuntimeError(
                    f"{d}: the ablation pool holds {len(recs)} images, variant {variant['name']} "
                    f"needs {n}. Fix: delete {d} and rerun (the pool is sized by the largest variant)."
                )
            images = np.stack([load_png(d / r["file"]) for r in recs])
            imgs, out_recs = augment_class(images, recs, params, int(seeds_by_id[d.name]))
            cdir = tmp / d.name
            cdir.mkdir()
            for img, rec in zip(imgs, out_recs):
                rec["sha256"] = save_png(cdir / rec["file"], img)
            (cdir / RECORDS).write_text(
                json.dumps(
                    {"meta": {"params": params, "variant": variant, "generated": src["meta"]}, "images": out_recs},
                    indent=1,
                )
            )
    class_dirs = sorted(str(p) for p in Path(out_aug_dir).iterdir() if p.is_dir())
    return package(
        class_dirs,
        class_names,
        mean,
        std,
        out_pt,
        out_manifest,
        out_folder,
        provenance={"ablation_variant": variant, "augmentation": params},
    )


def summarise_over_seeds(df: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    """One row per (variant, model) of per-seed results: the `first` columns (equal across seeds), the accuracy's
    mean and (population) std over the seeds, the seed count, each seed's accuracy, and "mean +- std" in %."""
    out = (
        df.groupby(["variant", "model"], sort=False)
        .agg(
            **{c: (c, "first") for c in first},
            accuracy_mean=("accuracy", "mean"),
            accuracy_std=("accuracy", lambda x: float(np.std(np.asarray(x, dtype=float)))),
            n_seeds=("seed", "count"),
            per_seed=("accuracy", lambda x: " ".join(f"{100 * a:.1f}" for a in x)),
        )
        .reset_index()
    )
    out["accuracy"] = [f"{100 * m:.2f} +- {100 * s:.2f}" for m, s in zip(out["accuracy_mean"], out["accuracy_std"])]
    return out


def ablation_table(rows: list[dict], variants: list[dict]) -> pd.DataFrame:
    """One row per (variant, model): accuracy mean and std (ddof=0) over seeds, and the gap to the random real
    subset of the same IPC in points. `rows`: variant, model, seed, path (an evaluation JSON)."""
    info = {v["name"]: v for v in variants}
    recs = []
    for r in rows:
        m = json.loads(Path(r["path"]).read_text())
        v = info[r["variant"]]
        recs.append(
            {
                "variant": r["variant"],
                "kind": "real" if r["variant"].startswith("real_") else "generated",
                "n_generated": v.get("n_generated"),
                "n_aug": v.get("n_aug"),
                "ipc": v["ipc"],
                "model": m["model_label"],
                "seed": m["seed"],
                "accuracy": m["accuracy"],
                "n_train": m["n_train"],
                "chance": m["chance"],
                "reused_from_run": r.get("reused_from_run"),
            }
        )
    out = summarise_over_seeds(
        pd.DataFrame(recs), ["kind", "n_generated", "n_aug", "ipc", "n_train", "chance", "reused_from_run"]
    )
    real = {(r.model, r.ipc): r.accuracy_mean for r in out.itertuples() if r.kind == "real"}
    out["minus_real_same_ipc_points"] = [
        round(100 * (r.accuracy_mean - real[(r.model, r.ipc)]), 2)
        if r.kind == "generated" and (r.model, r.ipc) in real
        else np.nan
        for r in out.itertuples()
    ]
    out["n_generated"] = out["n_generated"].astype("Int64")
    out["n_aug"] = out["n_aug"].astype("Int64")
    out = out.sort_values(["model", "ipc", "kind", "n_generated"], kind="stable").reset_index(drop=True)
    cols = [
        "variant",
        "kind",
        "n_generated",
        "n_aug",
        "ipc",
        "model",
        "accuracy",
        "accuracy_mean",
        "accuracy_std",
        "n_seeds",
        "per_seed",
        "minus_real_same_ipc_points",
        "n_train",
        "chance",
        "reused_from_run",
    ]
    return out[cols]


def ablation_plot(table: pd.DataFrame, path: str, title: str = "") -> None:
    """Bars per variant (grouped by IPC), error bars = std over seeds; generated sets vs real subsets."""
    from matplotlib.patches import Patch  # deferred (with report.plots): matplotlib is heavy; the table needs none

    from ..report.plots import plt, save_figure

    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(
        1,
        len(models),
        figsize=(max(5.0, 1.1 * len(table) / max(len(models), 1) + 2.5) * len(models), 3.9),
        squeeze=False,
    )
    for ax, model in zip(axes[0], models):
        t = table[table["model"] == model].reset_index(drop=True)
        x = np.arange(len(t))
        colours = [
            "#7570b3" if k == "real" else ("#d95f02" if (a or 0) > 0 else "#e6ab02")
            for k, a in zip(t["kind"], t["n_aug"].fillna(0))
        ]
        mean, std = 100 * t["accuracy_mean"].to_numpy(float), 100 * t["accuracy_std"].to_numpy(float)
        ax.bar(x, mean, yerr=std, capsize=4, color=colours)
        for xi, m, s in zip(x, mean, std):
            ax.text(xi, m + s + 1, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
        labels = [
            f"real\nIPC {r.ipc}" if r.kind == "real" else f"{r.n_generated} gen\nx (1+{r.n_aug})\nIPC {r.ipc}"
            for r in t.itertuples()
        ]
        ax.set_xticks(x, labels, fontsize=8)
        if len(t):
            chance = 100 * float(t["chance"].iloc[0])
            ax.axhline(chance, color="grey", ls="--", lw=1)
            ax.text(-0.45, chance + 1, f"chance {chance:.0f}%", ha="left", fontsize=7, color="grey")
        ax.set_ylim(0, 108)
        ax.set_ylabel("test accuracy (%), mean +- std over seeds")
        ax.set_title(title or f"{model}: post data augmentation ablation", fontsize=10)
        ax.legend(
            handles=[
                Patch(color="#d95f02", label="generated + PDA"),
                Patch(color="#e6ab02", label="generated, no PDA"),
                Patch(color="#7570b3", label="random real subset"),
            ],
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    save_figure(path, fig)
