"""What produced a run: resolved config, package versions, model (and tiny decoder) identity, device, per-class
sampler meta."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from . import __version__
from .atomic import write_text
from .layout import read_records
from .model_files import content_sha256
from .seeds import SEED_SCHEME

PACKAGES = [
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "snakemake",
    "numpy",
    "pillow",
    "pandas",
    "scikit-learn",
    "huggingface-hub",
    "safetensors",
]


def package_versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def model_identity(source: str, revision: str | None, snapshot: str | None = None, sha256: str | None = None) -> dict:
    """Hub id, revision and the cache's snapshot commit it was loaded from, or for a local directory the hash of
    its files' contents (`sha256`, as the classes' records name it, else model_files.content_sha256 now), so a run
    names its weights."""
    p = Path(source)
    if not p.is_dir():
        return {"source": source, "revision": revision, "snapshot": snapshot}
    return {"source": str(p), "local_sha256": sha256 or content_sha256(p)}


MODEL_KINDS = {
    "tiny": "demo/tests: tiny RANDOM-WEIGHT pipeline of SDXL-Turbo's component classes (images are noise)",
    "fitted": "demo/tests: STAND-IN generator of SDXL-Turbo's component classes, fitted on the demo dataset's own "
    "training split (gendistill.generator.fit; see FITTED_ON_DEMO_DATA.txt and fit_report.json in its "
    "directory) - not a pretrained model",
    "pretrained": "model.source as given (a pretrained model, e.g. stabilityai/sdxl-turbo)",
}


def write_provenance(
    path: str,
    cfg: dict,
    class_dirs: list[str],
    summary: dict,
    random_weights: bool,
    time_budget: dict | None = None,
    model_kind: str | None = None,
    teacher: dict | None = None,
) -> dict:
    """`teacher`: the teacher's record (teacher/teacher.json: sha256, source, test accuracy) when one is used."""
    samplers = {}
    for d in class_dirs:
        rec = read_records(d)["meta"]["generated"]
        samplers[Path(d).name] = {
            k: rec.get(k)
            for k in (
                "device",
                "dtype",
                "gpu",
                "server_pid",
                "pipeline_loads",
                "seconds",
                "model_source",
                "model_snapshot",
                "model_sha256",
                "code_hash",
                "torch",
                "diffusers",
                "family",
                "pipeline",
                "decoder",
                "tiny_decoder",
                "tiny_decoder_sha256",
            )
        }
    first = next(iter(samplers.values()), {})
    fit_report = None
    if model_kind == "fitted" and first.get("model_source"):
        fr = Path(first["model_source"]) / "fit_report.json"
        fit_report = json.loads(fr.read_text()) if fr.is_file() else None
    prov = {
        "gendistill": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "config": cfg,
        "model": model_identity(
            first.get("model_source") or cfg["model"]["source"],
            cfg["model"]["revision"],
            first.get("model_snapshot"),
            first.get("model_sha256"),
        ),
        "tiny_decoder": (
            model_identity(first["tiny_decoder"], None, None, first.get("tiny_decoder_sha256"))
            if first.get("tiny_decoder")
            else None
        ),
        "random_weights": random_weights,
        "model_kind": model_kind,
        "model_kind_means": MODEL_KINDS.get(model_kind),
        "seed_scheme": SEED_SCHEME,
        "determinism": (
            "CPU: bit-identical for the same config and library versions (tested). GPU: the same "
            "seeds give the same starting noise (CPU generators), but kernels may differ across "
            "GPU models, drivers and versions; generation.deterministic requests deterministic kernels."
        ),
        "sampling": samplers,
        "summary": summary,
        "time_budget": time_budget,  # the throughput measurement that chose n_generated, if any
        "fit_report": fit_report,  # model.fitted: how the stand-in generator was fitted (spec, data, losses, time)
    }
    if teacher is not None:  # only when a teacher is used (selection, soft labels): the paper's keys stay as they are
        prov["teacher"] = teacher
        prov["selection"] = {Path(d).name: read_records(d)["meta"]["generated"].get("selection") for d in class_dirs}
    write_text(Path(path), json.dumps(prov, indent=1, sort_keys=True))
    return prov


def write_evaluation_provenance(path: str, record: dict, metrics: list[dict]) -> dict:
    """results/evaluation_provenance.json: what the evaluation ran (evaluation/runs.record: the protocol with its
    sources and notes, the keys the config overrode, every run's recipe) and what the runs report (the accuracy
    kind, the teacher files' sha256), with the package versions. A file of its own: the packaged dataset's
    provenance stays independent of how the set is evaluated, so changing the evaluation never repackages."""
    from gendistill import __version__

    prov = {
        "gendistill": __version__,
        "python": sys.version.split()[0],
        "packages": package_versions(),
        **record,
        "accuracy_kinds": sorted({m.get("accuracy_kind", "final") for m in metrics}),
        "teacher_sha256": sorted({m["teacher_sha256"] for m in metrics if m.get("teacher_sha256")}),
        "evaluations": len(metrics),
    }
    write_text(Path(path), json.dumps(prov, indent=1, sort_keys=True))
    return prov
