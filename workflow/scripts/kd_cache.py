"""Snakemake script for rule `kd_cache` (thin: the logic is gendistill.evaluate.build_kd_cache). It takes its GPU (a
GPU slot: gendistill.evaluation.gpus) before it imports torch, so CUDA sees only that one."""

import json
import os
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.evaluation.gpus import TrainingGpus  # standard library only
from gendistill.logs import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]), TrainingGpus(count=1) as gpus:  # the cache is computed on one process
    import torch

    from gendistill.atomic import write_text
    from gendistill.devices import resolve_device
    from gendistill.evaluate import EvalSpec, build_kd_cache
    from gendistill.evaluation.runs import file_set
    from gendistill.evaluation.runtime import from_settings

    torch.set_num_threads(sm.threads)
    p = sm.params
    device = resolve_device(p.device, "evaluation.device")
    runtime = json.loads(os.environ.get("GENDISTILL_EVAL_RUNTIME") or "{}")
    runtime.pop("processes", None)
    kd = json.loads(p.kd)
    counts = json.loads(p.per_class_counts)
    spec = EvalSpec(
        set_name=p.set_name,
        model="",
        seed=int(p.subset_seed),  # picks a random real subset's images; the batches come from kd.cache_seed
        dataset=json.loads(p.dataset),
        labels=list(p.labels),
        num_classes=int(p.num_classes),
        recipe=json.loads(p.recipe),
        per_class_counts={int(k): int(v) for k, v in counts.items()} or None,
        resolution=p.resolution,
        distilled_path=sm.input.data if file_set(p.set_name) else None,
        device=device,
        workers=sm.threads - 1,
        label_regime="kd",
        kd=kd,
        teacher_path=sm.input.teacher,
        eval_key=f"{sm.wildcards.scope}{sm.wildcards.set}",
        runtime=runtime,
    )
    rt = from_settings({**runtime, "amp": spec.recipe.get("amp", "auto")}, device)
    rec = build_kd_cache(spec, sm.output.cache, kd, rt)
    rec.update(gpus.record())  # where it ran (not a rerun trigger)
    write_text(sm.output.record, json.dumps(rec, indent=1, sort_keys=True))
