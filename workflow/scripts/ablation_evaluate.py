"""Snakemake script for rule `ablation_evaluate` (thin: the logic is gendistill.evaluation.job, as `evaluate`)."""
import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import torch

from gendistill.atomic import write_text
from gendistill.evaluation.job import run_job
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    device = sm.params.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    w = sm.wildcards
    set_name = sm.params.set_name
    res = run_job(set_name, w.model, int(w.seed), dict(sm.params.items()),
                  sm.input.data if set_name == "distilled" else None, device,
                  workers=sm.threads - 1)  # image files (ImageNet) are read by DataLoader workers
    res.update({"device": device, "ablation_variant": w.variant})
    write_text(sm.output.metrics, json.dumps(res, indent=1, sort_keys=True))
