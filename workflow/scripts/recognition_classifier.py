"""Snakemake script for rule `recognition_classifier` (thin: the logic is gendistill.evaluation.recognition)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import json

import torch

from gendistill.devices import resolve_device
from gendistill.evaluation.progress import EpochProgress
from gendistill.evaluation.recognition import train_classifier
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    device = resolve_device(sm.params.device, "evaluation.device")
    p = sm.params
    recipe = json.loads(p.recipe)
    progress = EpochProgress(recipe["epochs"], "recogniser")
    try:
        meta = train_classifier(
            json.loads(p.dataset),
            list(p.labels),
            int(p.num_classes),
            p.model,
            int(p.seed),
            recipe,
            p.max_test_images,
            sm.output.model,
            sm.output.info,
            device,
            progress,
            workers=sm.threads - 1,  # image files (ImageNet): DataLoader workers
        )
    finally:
        progress.close()
    print(f"recogniser {meta['model_label']}: test accuracy {meta['accuracy']:.4f} on the real test split")
