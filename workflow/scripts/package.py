"""Snakemake script for rule `package` (thin: the logic is gendistill.distilled.package)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.distilled.package import package
from gendistill.logs import log_to
from gendistill.provenance import write_provenance

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    classes = sorted(str(d) for d in Path(sm.input.augmented).iterdir() if d.is_dir())  # ids sort in label order
    summary = package(
        classes,
        sm.params.class_names,
        sm.params.mean,
        sm.params.std,
        sm.output.tensor,
        sm.output.manifest,
        sm.output.folder,
        provenance={
            "config": sm.params.config,
            "random_weights": sm.params.random_weights,
            "model_kind": sm.params.model_kind,
        },
    )
    teacher = json.loads(Path(sm.input.teacher).read_text()) if sm.input.get("teacher") else None
    write_provenance(
        sm.output.provenance,
        json.loads(sm.params.config),
        classes,
        summary,
        random_weights=sm.params.random_weights,
        time_budget=json.loads(sm.params.time_budget),
        model_kind=sm.params.model_kind,
        teacher=teacher,
    )
    print(f"packaged {summary['n_images']} images over {summary['n_classes']} classes")
    if sm.params.random_weights:
        print("NOTE: these images come from a RANDOM-WEIGHT demo model; they are noise, not class pictures.")
    if sm.params.model_kind == "fitted":
        print(
            "NOTE: these images come from the demo's STAND-IN generator, fitted on the demo dataset's own "
            "training split (not a pretrained model)."
        )
