"""Snakemake script for rule `select`, the run's and the teacher ablation's (thin: the logic is
gendistill.teacher.selection)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import torch

from gendistill.devices import resolve_device
from gendistill.logs import log_to
from gendistill.teacher.selection import select_class

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    info = select_class(
        sm.input.candidates,
        sm.input.teacher,
        p.criterion,
        int(p.n_keep),
        int(p.n_candidates),
        list(p.labels),
        tuple(p.band),
        sm.output.images,
        sm.output.scores,
        device,
    )
    print(json.dumps(info, indent=1, sort_keys=True))
