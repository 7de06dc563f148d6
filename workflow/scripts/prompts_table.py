"""Snakemake script for rule `prompts_table`: the prompt table as an HTML page for the report."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import pandas as pd

from gendistill.logs import log_to
from gendistill.report.plots import html_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    df = pd.read_csv(sm.input.prompts, keep_default_na=False)
    html_table(df, sm.output.table, "Prompts: one per class (label index, class name, prompt, seed, images generated)")
    print(f"{len(df)} prompts")
