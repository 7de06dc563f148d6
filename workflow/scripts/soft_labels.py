"""Snakemake script for rule `soft_labels` (thin: the logic is gendistill.teacher.soft_labels)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import torch

from gendistill.devices import resolve_device
from gendistill.logs import log_to
from gendistill.teacher.soft_labels import compute

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    info = compute(sm.input.data, sm.input.teacher, float(p.temperature), sm.output.soft_labels, device)
    print(json.dumps(info, indent=1, sort_keys=True))
