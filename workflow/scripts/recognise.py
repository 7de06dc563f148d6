"""Snakemake script for rule `recognise`: label the generated images, write the per-class table, HTML and plot."""
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import json

import torch

from gendistill.evaluation.recognition import recognise
from gendistill.evaluation.table import write_csv
from gendistill.logs import log_to
from gendistill.report.plots import html_table, recognition_plot

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    device = sm.params.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    names = {int(k): v for k, v in json.loads(sm.params.class_names).items()}
    images, table = recognise(list(sm.input.generated), sm.input.model, sm.input.info, json.loads(sm.params.dataset),
                              names, device=device)
    write_csv(table, sm.output.table)
    write_csv(images, sm.output.images)
    stand_in = (" The generator is the demo's STAND-IN, fitted on the demo dataset's own training split."
                if sm.params.model_kind == "fitted" else
                " The generator has RANDOM weights (model.tiny): expect chance." if sm.params.model_kind == "tiny"
                else "")
    rec = table.iloc[0] if len(table) else None
    html_table(table.drop(columns=["recogniser", "chance"]), sm.output.html,
               "Generated images recognised as their prompt's class (per class and overall)",
               f"A {rec['recogniser'] if rec is not None else ''} trained on the real training split (test accuracy "
               f"{100 * rec['recogniser_test_accuracy']:.1f}% on the real test split) labels each generated image, "
               f"predicting among the run's classes (chance {100 * rec['chance']:.1f}%). diversity_vs_real: mean "
               f"pairwise pixel distance among the class's generated images / among its real training images."
               + stand_in if rec is not None else "no generated images")
    recognition_plot(table, sm.output.plot)
    print(table.to_string(index=False))
