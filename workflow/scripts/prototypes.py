"""Snakemake script for rule `prototypes` (thin: the logic is gendistill.prototypes)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import json

import torch

from gendistill.devices import resolve_device
from gendistill.logs import log_to
from gendistill.prototypes import write_class_prototypes

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    spec = json.loads(sm.params.spec)
    device = resolve_device(spec["load"]["device"], "generation.device")
    summary = write_class_prototypes(spec, json.loads(sm.params.dataset), sm.output.prototypes, device)
    print(
        f"class {spec['label']}: {summary['train_images']} training images -> {spec['n']} prototypes "
        f"(cluster sizes {summary['cluster_sizes']}) on {device}"
    )
