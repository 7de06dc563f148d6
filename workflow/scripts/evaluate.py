"""Snakemake script for rule `evaluate`, the run's evaluations and the ablations' (thin: decodes the params; the
logic is gendistill.evaluate, on several processes gendistill.evaluate_torchrun). It takes its GPUs (GPU slots:
gendistill.evaluation.gpus) before it imports torch, so CUDA sees only those."""

import json
import os
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.evaluation.gpus import TrainingGpus  # standard library only
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
# how the job runs (processes, layout, compile): runtime knobs, not params (workflow/rules/common.smk)
runtime = json.loads(os.environ.get("GENDISTILL_EVAL_RUNTIME") or "{}")
processes = int(runtime.pop("processes", 1))
with log_to(sm.log[0]) as log_file, TrainingGpus(count=processes) as gpus:
    import torch

    from gendistill.atomic import write_text
    from gendistill.devices import resolve_device
    from gendistill.evaluate import EvalSpec, run_job
    from gendistill.evaluation.runs import file_set
    from gendistill.evaluation.runtime import from_settings

    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    w = sm.wildcards
    spec = EvalSpec(
        set_name=p.set_name,
        model=w.model,
        seed=int(w.seed),
        dataset=json.loads(p.dataset),
        labels=list(p.labels),
        num_classes=int(p.num_classes),
        recipe=json.loads(p.recipe),
        per_class_counts={int(k): int(v) for k, v in json.loads(p.per_class_counts).items()}
        if p.per_class_counts
        else None,
        max_test_images=p.max_test_images,
        resolution=p.resolution,
        distilled_path=sm.input.data if file_set(p.set_name) else None,
        device=device,
        workers=sm.threads - 1,  # image files (ImageNet) are read by DataLoader workers
        label_regime=p.label_regime,
        kd=json.loads(p.kd) if p.kd else None,
        soft_labels_path=sm.input.get("soft_labels") or None,
        teacher_path=sm.input.get("teacher") or None,
        kd_cache_path=sm.input.get("kd_cache") or None,
        # the evaluation run (evaluation/runs.py) under its scope: ablation/<variant>, ablation/methods/<name>/<key>
        eval_key=f"{w.scope}{w.set}",
        runtime=runtime,
    )
    if processes > 1:
        from gendistill.evaluate_torchrun import run as run_on_processes

        res = run_on_processes(spec, processes, sm.threads, log_file, keep_fds=gpus.fds)
    else:
        res = run_job(spec, from_settings({**runtime, "amp": spec.recipe.get("amp", "auto")}, device))
    res["device"] = device
    res.update(gpus.record())  # where it trained: its GPU slots and CUDA_VISIBLE_DEVICES (not a rerun trigger)
    write_text(sm.output.metrics, json.dumps(res, indent=1, sort_keys=True))
