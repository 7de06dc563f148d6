"""Snakemake script for rule `ablation_table`: the PDA ablation's table (CSV, HTML) and plot."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.ablation.pda import ablation_plot, ablation_table
from gendistill.evaluation.table import write_csv
from gendistill.logs import log_to
from gendistill.report.plots import html_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    table = ablation_table(json.loads(sm.params.rows), json.loads(sm.params.variants))
    write_csv(table, sm.output.table)
    stand_in = (
        " Generator: the demo's STAND-IN, fitted on the demo dataset's own training split (not SDXL-Turbo)."
        if sm.params.model_kind == "fitted"
        else ""
    )
    html_table(
        table.drop(columns=["accuracy_mean", "accuracy_std"]),
        sm.output.html,
        "Post data augmentation ablation: test accuracy (%), mean +- std over training seeds",
        "gen N x (1 + A): N generated images per class, each kept plus A augmented copies (IPC = N x (1 + A)); "
        "real_ipcK: a seeded random real subset with K images per class. Every set is trained with the same "
        "model, recipe and seeds. minus_real_same_ipc_points: accuracy minus the real subset of the same IPC. "
        "reused_from_run: the run's own evaluation jobs (the same set and seeds)." + stand_in,
    )
    ablation_plot(table, sm.output.plot)
    print(table.to_string(index=False))
