"""Snakemake script for rule `sample_grids` (thin: the logic is gendistill.report.grids)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.layout import class_dir
from gendistill.logs import log_to
from gendistill.report.grids import write_grids

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    classes = json.loads(sm.params.classes)
    n = write_grids(
        classes,
        [class_dir(sm.input.augmented, c["id"]) for c in classes],
        sm.output.grids,
        sm.output.overview,
        int(sm.params.max_rows),
        int(sm.params.max_classes),
    )
    print(f"grids for {n} of {len(classes)} classes (report.max_class_grids: {sm.params.max_classes})")
