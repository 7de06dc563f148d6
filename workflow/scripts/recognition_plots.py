"""Snakemake script for rule `recognition_plots`: the recognition table as HTML and a bar plot for the report."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import pandas as pd

from gendistill.logs import log_to
from gendistill.report.plots import html_table, recognition_plot

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    table = pd.read_csv(sm.input.table, keep_default_na=False, na_values=[""])
    stand_in = {
        "fitted": " The generator is the demo's STAND-IN, fitted on the demo dataset's own training split "
        "(not a pretrained model).",
        "tiny": " The generator has RANDOM weights (model.tiny): expect chance.",
    }.get(sm.params.model_kind, "")
    note = "no generated images"
    if len(table):
        r = table.iloc[0]
        note = (
            f"A {r['recogniser']} trained on the real training split (test accuracy "
            f"{100 * r['recogniser_test_accuracy']:.1f}% on the real test split) labels each generated image, "
            f"predicting among the run's classes (chance {100 * r['chance']:.1f}%). diversity_vs_real: mean "
            f"pairwise pixel distance among the class's generated images / among its real training images "
            f"(1 = as varied as real data, 0 = one image repeated).{stand_in}"
        )
    html_table(
        table.drop(columns=["recogniser", "chance", "recogniser_test_accuracy"]),
        sm.output.html,
        "Generated images recognised as their prompt's class (per class and overall)",
        note,
    )
    recognition_plot(table, sm.output.plot)
