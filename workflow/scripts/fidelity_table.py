"""Snakemake script for rule `fidelity_table`: the fidelity table as HTML for the report."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import pandas as pd

from gendistill.evaluation.fidelity import DISPLAY_NOTE, display_frame
from gendistill.logs import log_to
from gendistill.report.plots import html_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    table = pd.read_csv(sm.input.table)
    html_table(
        display_frame(table),
        sm.output.html,
        f"Fidelity and diversity of each set against the real test split ({table['features'].iloc[0]} features, "
        f"k = {table['nearest_k'].iloc[0]}, {table['n_real'].iloc[0]} real test images)",
        DISPLAY_NOTE,
    )
