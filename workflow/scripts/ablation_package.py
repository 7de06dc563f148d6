"""Snakemake script for rule `ablation_package`: one PDA-ablation variant's set from the per-class pools.

Each class takes the first n_generated images of its pool and the same augmentation code as the augment stage
(gendistill.distilled.augment.augment_class, same per-copy seeds), then the set is packaged like the distilled set.
"""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import json
from pathlib import Path

from gendistill.ablation.pda import build_variant
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    summary = build_variant(
        list(sm.input.pool),
        json.loads(sm.params.variant),
        json.loads(sm.params.aug),
        json.loads(sm.params.seeds),
        sm.params.class_names,
        sm.params.mean,
        sm.params.std,
        Path(sm.output.augmented),
        sm.output.tensor,
        sm.output.manifest,
        sm.output.folder,
    )
    print(json.dumps(summary))
