"""Print a run's headline numbers: accuracy per training set, class recognition, the PDA and teacher
ablations (if run).

    python -m gendistill.report.summary results/demo

Reads only the run's result CSVs (no torch), so `make demo` can end with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

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
        s = pd.read_csv(run.summary)
        lines.append("\ntest accuracy (%), mean +- std over training seeds:")
        for r in s.itertuples():
            lines.append(
                f"  {r.set:<14} {r.model:<11} {r.accuracy:>15}   ({r.n_seeds} seeds, {r.n_train} training "
                f"images, chance {100 * r.chance:.0f}%)"
            )
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m gendistill.report.summary results/<run>", file=sys.stderr)
        return 2
    if not Path(argv[0]).is_dir():
        print(f"{argv[0]}: no such run directory (run the workflow first)", file=sys.stderr)
        return 2
    print(summary_text(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
