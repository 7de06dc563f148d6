"""Snakemake script for rule `teacher` (thin: the logic is gendistill.teacher.classifier)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import torch

from gendistill.devices import resolve_device
from gendistill.logs import log_to
from gendistill.teacher.classifier import import_checkpoint, train_teacher

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    if sm.input.get("checkpoint"):
        info = import_checkpoint(
            sm.input.checkpoint,
            p.model,
            int(p.num_classes),
            int(p.resolution),
            list(p.labels),
            list(p.mean),
            list(p.std),
            sm.output.model,
            sm.output.record,
        )
    else:
        info = train_teacher(
            json.loads(p.dataset),
            list(p.labels),
            int(p.num_classes),
            p.model,
            int(p.seed),
            json.loads(p.recipe),
            int(p.resolution),
            p.max_test_images,
            device,
            sm.output.model,
            sm.output.record,
            workers=sm.threads - 1,
        )
    print(json.dumps(info, indent=1, sort_keys=True))
