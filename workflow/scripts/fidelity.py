"""Snakemake script for rule `fidelity` (thin: the logic is gendistill.fidelity)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import torch

from gendistill.devices import resolve_device
from gendistill.fidelity import measure_sets
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    table = measure_sets(
        json.loads(p.sets),
        p.features,
        {"model": sm.input.model, "info": sm.input.get("info") or None},
        json.loads(p.dataset),
        list(p.labels),
        int(p.nearest_k),
        int(p.max_images),
        p.max_test_images,
        sm.output.table,
        device,
        workers=sm.threads - 1,  # image files (ImageNet): DataLoader workers
    )
    print(table.to_string(index=False))
