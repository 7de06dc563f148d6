"""Snakemake script for rule `evaluation_plots`: accuracy plot + HTML table, per-class plot + HTML table."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import pandas as pd

from gendistill.evaluation.table import DISPLAY_NOTE, display_frame
from gendistill.logs import log_to
from gendistill.report.plots import accuracy_plot, html_table, per_class_plot

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    summary = pd.read_csv(sm.input.summary)
    per_class = pd.read_csv(sm.input.per_class)
    accuracy_plot(summary, sm.output.accuracy, f"{sm.params.run}: test accuracy (mean +- std over seeds)")
    html_table(
        display_frame(summary),
        sm.output.table,
        "Test accuracy (%) per training set and model (label regime, augmentation): mean +- std, 95% interval",
        DISPLAY_NOTE,
    )
    per_class_plot(per_class, sm.output.per_class)
    d = per_class[per_class["set"] == "distilled"].sort_values(["model", "accuracy_mean", "class_index"])
    html_table(
        d,
        sm.output.per_class_table,
        "Per-class test accuracy after training on the distilled set, worst first",
        "minus_random_subset_points < 0: real images of the same IPC teach this class better than the generated ones.",
    )
    print(summary.to_string(index=False))
