"""Snakemake script for rule `teacher_ablation_table`: the teacher ablation's table (CSV, HTML) and plot."""

import json
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.ablation.teacher import teacher_ablation_plot, teacher_ablation_table
from gendistill.evaluation.table import write_csv
from gendistill.logs import log_to
from gendistill.report.plots import html_table

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    teacher = json.loads(Path(sm.input.teacher).read_text())
    table = teacher_ablation_table(json.loads(sm.params.rows), json.loads(sm.params.variants))
    write_csv(table, sm.output.table)
    stand_in = (
        " Generator: the demo's STAND-IN, fitted on the demo dataset's own training split (not SDXL-Turbo)."
        if sm.params.model_kind == "fitted"
        else ""
    )
    acc = teacher.get("test_accuracy")
    html_table(
        table.drop(columns=["accuracy_mean", "accuracy_std"]),
        sm.output.html,
        "Teacher ablation: test accuracy (%), mean +- std over training seeds",
        f"Teacher: {teacher['model']} ({teacher['source']}"
        + (f", {100 * acc:.2f} % on the real test set" if acc is not None else "")
        + f", sha256 {teacher['sha256'][:12]}). selection: kept n_generated of oversample x n_generated "
        "candidates per class by the criterion, then the same PDA; labels soft: KD on the teacher's logits "
        "(the random real subset is labelled by the same teacher). Same model, recipe and seeds for every "
        "row; reused_from_run: the run's own evaluation jobs." + stand_in,
    )
    teacher_ablation_plot(table, sm.output.plot)
    print(table.to_string(index=False))
