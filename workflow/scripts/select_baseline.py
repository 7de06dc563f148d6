"""Snakemake script for rule `select_baseline` (thin: the logic is gendistill.teacher.baselines)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import torch

from gendistill.devices import resolve_device
from gendistill.logs import log_to
from gendistill.teacher.baselines import select_baseline

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    sel = json.loads(p.selection)
    info = select_baseline(
        sel["method"],
        json.loads(p.dataset),
        {int(k): int(v) for k, v in sel["counts"].items()},
        int(sel["seed"]),
        sel["settings"],
        sm.input.teacher,
        list(p.class_names),
        list(p.labels),
        sm.output.set,
        sm.output.picks,
        device,
        workers=sm.threads - 1,  # image files (ImageNet): DataLoader workers
    )
    print(json.dumps(info, indent=1, sort_keys=True))
