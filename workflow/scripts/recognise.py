"""Snakemake script for rule `recognise`: label the generated images with the recogniser (per image, per class)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import json

import torch

from gendistill.devices import resolve_device
from gendistill.evaluation.recognition import recognise
from gendistill.evaluation.table import write_csv
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    device = resolve_device(sm.params.device, "evaluation.device")
    names = {int(k): v for k, v in json.loads(sm.params.class_names).items()}
    images, table = recognise(
        list(sm.input.generated), sm.input.model, sm.input.info, json.loads(sm.params.dataset), names, device=device
    )
    write_csv(table, sm.output.table)
    write_csv(images, sm.output.images)
    print(table.to_string(index=False))
