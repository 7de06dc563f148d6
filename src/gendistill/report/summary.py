"""Print a run's headline numbers: accuracy per training set, class recognition, fidelity and diversity per set,
the PDA and teacher ablations (if run).

    python -m gendistill.report.summary results/demo
    python -m gendistill.report.summary --compare results/<run> results/<run> ...   # distilled vs random, per run
    python -m gendistill.report.summary --methods [--markdown] results/<run> ...     # every set of each run

Reads only the run's result CSVs (no torch), so `make demo` can end with it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from ..evaluation.runs import is_method_set
from ..layout import RunLayout


def summary_text(run_dir: Path) -> str:
    run = RunLayout(str(run_dir))
    lines = []
    prov = Path(run.provenance)
    if prov.is_file():
        p = json.loads(prov.read_text())
        if p.get("model_kind_means"):
            lines.append(f"generator: {p['model_kind_means']}")
    if Path(run.summary).is_file():
        lines += accuracy_lines(pd.read_csv(run.summary, keep_default_na=False, na_values=[""]))
    if Path(run.recognition).is_file():
        t = pd.read_csv(run.recognition, keep_default_na=False, na_values=[""])
        if len(t):
            lines.append(
                f"\ngenerated images recognised as their prompt's class (recogniser: "
                f"{t['recogniser'].iloc[0]}, {100 * t['recogniser_test_accuracy'].iloc[0]:.1f}% on the real "
                f"test set):"
            )
            lines.append(
                "  "
                + ", ".join(
                    f"{r.class_name} {100 * r.recognised_fraction:.0f}% ({r.n_recognised}/{r.n_images})"
                    for r in t.itertuples()
                )
            )
    if Path(run.fidelity).is_file():
        lines += fidelity_lines(pd.read_csv(run.fidelity))
    if Path(run.ablation).is_file():
        a = pd.read_csv(run.ablation)
        lines.append("\nPDA ablation, test accuracy (%), mean +- std over seeds:")
        for r in a.itertuples():
            what = (
                f"random real subset, IPC {r.ipc}"
                if r.kind == "real"
                else f"{int(r.n_generated)} generated x (1 + {int(r.n_aug)}), IPC {r.ipc}"
            )
            lines.append(f"  {what:<36} {r.model:<11} {r.accuracy:>15}")
    if Path(run.teacher_ablation).is_file():
        a = pd.read_csv(run.teacher_ablation)
        lines.append("\nteacher ablation (beyond the paper), test accuracy (%), mean +- std over seeds:")
        for r in a.itertuples():
            what = f"{r.row}" + (f" ({r.oversample} candidates per kept image)" if r.oversample > 1 else "")
            lines.append(
                f"  {what:<54} {r.labels:<5} {r.model:<11} {r.accuracy:>15}   {r.minus_paper_points:+.2f} vs paper"
            )
    return "\n".join(lines).lstrip("\n")


def _ci(low, high, scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "[no interval]"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f"[{f.format(scale * low)}, {f.format(scale * high)}]"


def accuracy_lines(s: pd.DataFrame) -> list[str]:
    """The summary per evaluation run: accuracy mean +- std with its 95 % interval; for every set but the random
    subset, the difference to the random subset in the same regime with its interval and verdict; then
    DD-Ranking's scores where the run has their components."""
    if "accuracy_ci_low" not in s.columns:  # a summary written before intervals were added
        lines = ["\ntest accuracy (%), mean +- std over training seeds:"]
        for r in s.itertuples():
            lines.append(
                f"  {r.set:<14} {r.model:<11} {r.accuracy:>15}   ({r.n_seeds} seeds, {r.n_train} training "
                f"images, chance {100 * r.chance:.0f}%)"
            )
        return lines
    several = len({(r.labels, bool(r.train_augment)) for r in s.itertuples() if r.set != "full"}) > 1
    lines = [
        "\ntest accuracy (%), mean +- std over training seeds, 95% interval; minus the random real subset in the "
        "same label regime (points, 95% interval):"
    ]
    for r in s.itertuples():
        what = r.set + (f" [{r.labels}{'' if r.train_augment else ', no aug'}]" if several and r.set != "full" else "")
        line = (
            f"  {what:<32} {r.model:<11} {r.accuracy:>15} {_ci(r.accuracy_ci_low, r.accuracy_ci_high):>15}"
            f"  ({r.n_seeds} seeds, {r.n_train} images)"
        )
        if r.set != "random_subset" and isinstance(r.vs_random, str) and r.vs_random:
            line += (
                f"  vs random {r.minus_random_subset_points:+.1f} "
                f"{_ci(r.vs_random_ci_low_points, r.vs_random_ci_high_points, 1.0, sign=True)} {r.vs_random}"
            )
        lines.append(line)
    rated = s["set"].map(lambda x: x in ("distilled", "kmeans_real", "rded") or is_method_set(x))  # DD-Ranking rates
    scored = s[rated & s["train_augment"].astype(bool)] if "lrs" in s.columns else s.iloc[:0]
    scored = scored[[math.isfinite(v) for v in scored["ior"]]] if len(scored) else scored
    if len(scored):
        w = f"weights {scored['lrs_weight'].iloc[0]:g} / {scored['ars_weight'].iloc[0]:g}" if "lrs_weight" in s else ""
        lines.append(f"\nDD-Ranking's scores (accuracies as fractions; {w}; comparable only under the same protocol):")
        width = max(11, *(len(x) for x in scored["set"]))
        for r in scored.itertuples():
            lines.append(
                f"  {r.set:<{width}} {r.labels:<5} {r.model:<11} HLR {r.hlr:.3f}  IOR {r.ior:+.3f}  LRS {r.lrs:.3f} "
                f"{_ci(r.lrs_ci_low, r.lrs_ci_high, 1.0, 3)}  ARS "
                + (f"{r.ars:.3f} {_ci(r.ars_ci_low, r.ars_ci_high, 1.0, 3)}" if math.isfinite(r.ars) else "-")
            )
    if "protocol" in s.columns and s["protocol"].notna().any() and str(s["protocol"].iloc[0]):
        lines.append(f"evaluation protocol: {s['protocol'].iloc[0]} (results/evaluation_provenance.json)")
    return lines


def fidelity_lines(t: pd.DataFrame) -> list[str]:
    """Per set: precision, recall, density, coverage and the Frechet distance against the real test split."""
    if not len(t):
        return []
    r0 = t.iloc[0]
    w = max(14, *(len(x) for x in t["set"]))
    lines = [
        f"\nfidelity and diversity against the real test split ({r0['features']} features, k = {r0['nearest_k']}, "
        f"{r0['n_real']} test images; the random subset: mean over {int(t['n_draws'].max())} draws):",
        f"  {'set':<{w}} {'images':>6} {'precision':>9} {'recall':>7} {'density':>7} {'coverage':>8} {'Frechet':>9}",
    ]
    for r in t.itertuples():
        vals = [f"{v:.3f}" if math.isfinite(v) else "-" for v in (r.precision, r.recall, r.density, r.coverage)]
        fd = f"{r.frechet_distance:.2f}" if math.isfinite(r.frechet_distance) else "-"
        lines.append(f"  {r.set:<{w}} {r.n_images:>6} {vals[0]:>9} {vals[1]:>7} {vals[2]:>7} {vals[3]:>8} {fd:>9}")
    return lines


def comparison_text(run_dirs: list[Path]) -> str:
    """One table over runs (e.g. IPC 1 and IPC 10): per run, label regime and training augmentation, the distilled
    set and the random real subset (accuracy %, 95 % interval), their difference (points, 95 % interval, paired
    by seed) and verdict, and DD-Ranking's LRS and ARS."""
    head = (
        f"{'run':<22} {'labels':<6} {'aug':<4} {'distilled':>23} {'random subset':>23} "
        f"{'distilled - random':>24}  {'verdict':<20} {'LRS':>6} {'ARS':>6}"
    )
    lines, protocols, seeds, weights = [head, "-" * len(head)], set(), set(), set()
    regime_order = {"hard": 0, "soft": 1, "kd": 2}
    for d in run_dirs:
        s = pd.read_csv(RunLayout(str(d)).summary, keep_default_na=False, na_values=[""])
        protocols |= set(s["protocol"].dropna().astype(str)) if "protocol" in s.columns else set()
        seeds |= set(s["n_seeds"])
        if "lrs_weight" in s.columns:
            weights |= {f"{a:g} / {b:g}" for a, b in zip(s["lrs_weight"], s["ars_weight"])}
        rand = {(r.model, r.labels, bool(r.train_augment)): r for r in s.itertuples() if r.set == "random_subset"}
        dist = s[s["set"] == "distilled"]
        dist = dist.assign(_r=dist["labels"].map(regime_order), _a=~dist["train_augment"].astype(bool))
        for r in dist.sort_values(["model", "_r", "_a"], kind="stable").itertuples():
            q = rand.get((r.model, r.labels, bool(r.train_augment)))
            acc = f"{100 * r.accuracy_mean:5.1f} {_ci(r.accuracy_ci_low, r.accuracy_ci_high)}"
            racc = f"{100 * q.accuracy_mean:5.1f} {_ci(q.accuracy_ci_low, q.accuracy_ci_high)}" if q else "-"
            diff = (
                f"{r.minus_random_subset_points:+5.1f} "
                f"{_ci(r.vs_random_ci_low_points, r.vs_random_ci_high_points, 1.0, sign=True)}"
                if q
                else "-"
            )
            lrs = f"{r.lrs:.3f}" if "lrs" in s.columns and math.isfinite(r.lrs) else "-"
            ars = f"{r.ars:.3f}" if "ars" in s.columns and math.isfinite(r.ars) else "-"
            lines.append(
                f"{Path(d).name:<22} {r.labels:<6} {'yes' if r.train_augment else 'no':<4} {acc:>23} {racc:>23} "
                f"{diff:>24}  {(r.vs_random if q else ''):<20} {lrs:>6} {ars:>6}"
            )
    lines.append(
        f"test accuracy (%) mean and 95% interval over {'/'.join(str(int(n)) for n in sorted(seeds))} training "
        f"seeds; protocol {', '.join(sorted(protocols)) or 'none'}; LRS and ARS from fractions (weights "
        f"{', '.join(sorted(weights)) or '0.5 / 0.5'}), comparable only under the same protocol; 'not "
        "distinguishable': the difference's interval contains 0."
    )
    return "\n".join(lines)


def _set_label(name: str) -> str:
    """A set's row label in the methods table."""
    labels = {
        "distilled": "distilled (the run's own)",
        "random_subset": "random real subset",
        "kmeans_real": "kmeans_real",
        "rded": "rded",
        "full": "full training split",
    }
    return name.split(":", 1)[1] if is_method_set(name) else labels.get(name, name)


def methods_rows(run_dir: Path) -> list[dict]:
    """One row per (set, label regime) of a run, the runs with training augmentation, sets in table order: accuracy
    and its interval, the difference to the random subset with its interval and verdict, LRS, the set's fidelity and
    diversity and the wall time to make it. Values as formatted strings ("" where the run has none)."""
    run = RunLayout(str(run_dir))
    s = pd.read_csv(run.summary, keep_default_na=False, na_values=[""])
    s = s[s["train_augment"].astype(bool)] if "train_augment" in s.columns else s
    fid = {}
    if Path(run.fidelity).is_file():
        fid = {r["set"]: r for r in pd.read_csv(run.fidelity).to_dict("records")}

    def num(v, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else ""

    rows = []
    for r in s.itertuples():
        f = fid.get(r.set, {})
        diff = ""
        if r.set != "random_subset" and math.isfinite(r.minus_random_subset_points):
            ci = _ci(r.vs_random_ci_low_points, r.vs_random_ci_high_points, 1.0, sign=True)
            diff = f"{r.minus_random_subset_points:+.1f} {ci}"
        made = getattr(r, "make_wall_seconds", math.nan)
        rows.append(
            {
                "set": _set_label(r.set),
                "labels": r.labels,
                "accuracy": f"{100 * r.accuracy_mean:.1f} {_ci(r.accuracy_ci_low, r.accuracy_ci_high)}",
                "minus random": diff,
                "verdict": r.vs_random if isinstance(r.vs_random, str) and r.set != "random_subset" else "",
                "LRS": num(getattr(r, "lrs", math.nan), ".3f"),
                "precision": num(f.get("precision", math.nan), ".3f"),
                "recall": num(f.get("recall", math.nan), ".3f"),
                "density": num(f.get("density", math.nan), ".3f"),
                "coverage": num(f.get("coverage", math.nan), ".3f"),
                "Frechet": num(f.get("frechet_distance", math.nan), ".1f"),
                "made in (s)": num(made, ".0f"),
            }
        )
    return rows


METHODS_HEAD = {
    "accuracy": "accuracy (%) [95% CI]",
    "minus random": "minus random (points) [95% CI]",
}


def methods_text(run_dirs: list[Path], markdown: bool = False) -> str:
    """One table per run (e.g. IPC 1 and IPC 10) of every set it evaluated (the distilled set, the generation
    methods, the selection baselines, the random real subset, the full data) in each label regime: methods_rows.
    `markdown`: as Markdown tables."""
    out = []
    for d in run_dirs:
        rows = methods_rows(d)
        s = pd.read_csv(RunLayout(str(d)).summary, keep_default_na=False, na_values=[""])
        seeds = "/".join(str(int(n)) for n in sorted(set(s["n_seeds"])))
        protocol = next((str(p) for p in s.get("protocol", []) if isinstance(p, str) and p), "none")
        out.append(f"{Path(d).name}: test accuracy over {seeds} training seeds; protocol {protocol}")
        cols = list(rows[0]) if rows else []
        heads = [METHODS_HEAD.get(c, c) for c in cols]
        if markdown:
            out.append("| " + " | ".join(heads) + " |")
            out.append("|" + "---|" * len(heads))
            out += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
        else:
            widths = [max(len(h), *(len(r[c]) for r in rows)) for h, c in zip(heads, cols)]
            out.append("  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip())
            out.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
            out += ["  ".join(r[c].ljust(w) for c, w in zip(cols, widths)).rstrip() for r in rows]
        out.append("")
    out.append(
        "minus random: the set's accuracy minus the random real subset's in the same label regime, paired by seed, "
        "with its 95% interval ('not distinguishable': it contains 0); LRS from fractions (DD-Ranking), comparable "
        "only under the same protocol; precision, recall, density, coverage (k-NN, Naeem et al.) and the Frechet "
        "distance against the real test split (results/fidelity.csv); made in: the wall seconds of the jobs that "
        "made the set, summed (prototypes, sampling, selection, augmentation and packaging; a selection baseline's "
        "job), not counting what all sets share (the fitted stand-in, the teacher)."
    )
    return "\n".join(out)


USAGE = (
    "usage: python -m gendistill.report.summary results/<run>\n"
    "       python -m gendistill.report.summary --compare results/<run> results/<run> ...\n"
    "       python -m gendistill.report.summary --methods [--markdown] results/<run> ..."
)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = argv.pop(0) if argv and argv[0] in ("--compare", "--methods") else None
    markdown = mode == "--methods" and bool(argv) and argv[0] == "--markdown"
    runs = argv[1:] if markdown else argv
    if not runs or (len(runs) != 1 and mode is None) or any(r.startswith("--") for r in runs):
        print(USAGE, file=sys.stderr)
        return 2
    for r in runs:
        if not Path(r).is_dir():
            print(f"{r}: no such run directory (run the workflow first)", file=sys.stderr)
            return 2
    paths = [Path(r) for r in runs]
    if mode == "--compare":
        print(comparison_text(paths))
    elif mode == "--methods":
        print(methods_text(paths, markdown))
    else:
        print(summary_text(paths[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
