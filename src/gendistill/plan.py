"""Resolve a validated config into the run plan: which classes, their prompts, seeds and counts, and where
the model and data are. Runs when Snakemake builds the DAG, so every check here happens before any job.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import ConfigError, load_and_validate
from .datasets import DatasetError, get_adapter
from .naming import class_ids

@dataclass(frozen=True)
class ClassPlan:
    """Everything that determines one class's generated images (its sample job's params)."""

    index: int  # the dataset's label for this class
    name: str
    id: str  # file-safe, unique, sorts in label order
    prompt: str
    seed: int
    n_generated: int

    def as_dict(self) -> dict:
        return asdict(self)

@dataclass
class Plan:
    cfg: dict
    classes: list[ClassPlan]
    all_class_names: list[str]
    image_size: int
    mean: tuple
    std: tuple
    has_real_data: bool
    model_dir: str | None  # built model directory (tiny random-weight or fitted stand-in), else None
    model_source: str
    model_kind: str = "pretrained"  # "tiny" (random weights), "fitted" (stand-in fitted on the demo data), "pretrained"

    @property
    def out(self) -> Path:
        return Path(self.cfg["results_dir"]) / self.cfg["run"]

    def by_id(self, cid: str) -> ClassPlan:
        return self._index[cid]

    def __post_init__(self):
        self._index = {c.id: c for c in self.classes}

def tiny_model_dir(cfg: dict) -> str | None:
    spec = cfg["model"].get("tiny")
    if spec is None:
        return None
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return str(Path(cfg["results_dir"]) / "models" / f"tiny-sdxl-{h}")


def fitted_model_identity(cfg: dict) -> dict | None:
    """What determines the fitted stand-in's weights: its spec, the data it is fitted to, the recipe version."""
    from .model_fit import FIT_VERSION, full_spec

    spec = cfg["model"].get("fitted")
    if spec is None:
        return None
    ds = cfg["dataset"]
    return {"spec": full_spec(spec), "fit_version": FIT_VERSION,
            "dataset": {"name": ds["name"], "split_seed": ds.get("split_seed", 0), "image_size": ds.get("image_size")}}


def fitted_model_dir(cfg: dict) -> str | None:
    ident = fitted_model_identity(cfg)
    if ident is None:
        return None
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    return str(Path(cfg["results_dir"]) / "models" / f"fitted-sdxl-{h}")


def model_kind(cfg: dict) -> str:
    return "tiny" if cfg["model"].get("tiny") is not None else (
        "fitted" if cfg["model"].get("fitted") is not None else "pretrained")


def fitted_problems(cfg: dict, image_size: int) -> list[str]:
    """model.fitted: the stand-in is fitted for one dataset, one resolution and the one-step sampler."""
    from .model_fit import spec_problems

    if cfg["model"].get("fitted") is None:
        return []
    problems = []
    if cfg["model"].get("tiny") is not None:
        problems.append("model: both tiny (random weights) and fitted (stand-in fitted on the demo data) are set. "
                        "Fix: keep one of them (model.tiny: null or model.fitted: null).")
    problems += spec_problems(cfg["model"]["fitted"], cfg["dataset"])
    gen = cfg["generation"]
    if gen["resolution"] != image_size:
        problems.append(f"generation.resolution: {gen['resolution']}, but model.fitted is fitted at the dataset's "
                        f"{image_size} px (it has never seen another size). Fix: generation.resolution: {image_size}.")
    if gen["steps"] != 1:
        problems.append(f"generation.steps: {gen['steps']}, but model.fitted is fitted for the one trailing "
                        f"Euler-ancestral step SDXL-Turbo is used with. Fix: generation.steps: 1.")
    if gen["guidance_scale"] > 1.0:
        problems.append(f"generation.guidance_scale: {gen['guidance_scale']}, but model.fitted learned no "
                        f"unconditional (empty-prompt) prediction, which guidance needs. Fix: guidance_scale: 0.")
    return problems

def model_problem(source: str, revision: str | None) -> str | None:
    """None when the model can be loaded (local dir, or in the HF cache, or online); else what to do."""
    p = Path(source).expanduser()
    if p.exists() or source.startswith((".", "/", "~")):
        if not (p / "model_index.json").is_file():
            return (f"model.source: local directory {p} has no model_index.json (is it a diffusers pipeline "
                    f"directory?). Fix: on a machine with internet run `hf download stabilityai/sdxl-turbo "
                    f"--local-dir {p}` (or `save_pretrained` the pipeline there), copy it here, and point "
                    f"model.source at it.")
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "model_index.json", revision=revision)
    if isinstance(cached, str):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return (f"model.source: {source!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it "
                f"cannot be downloaded. Fix: on a machine with internet run `hf download {source} --local-dir "
                f"models/{source.split('/')[-1]}`, copy that directory here and set model.source: "
                f"models/{source.split('/')[-1]} (or copy the HF cache into $HF_HOME).")
    return None

def model_note(source: str, revision: str | None) -> str | None:
    """For an error report: say when a hub model is not cached locally (it would be downloaded at sampling)."""
    p = Path(source).expanduser()
    if p.exists() or source.startswith((".", "/", "~")):
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "model_index.json", revision=revision), str):
        return None
    return (f"model.source: {source!r} is not in the local Hugging Face cache; the first sample job would try to "
            f"download it. Without internet: `hf download {source} --local-dir models/{source.split('/')[-1]}` "
            f"on a machine that has it, copy the directory here, and set model.source: "
            f"models/{source.split('/')[-1]} (and HF_HUB_OFFLINE=1).")


def _format_prompt(template: str, fields: dict, key: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError([f"{key}: cannot fill {template!r} ({e!r}); available fields: "
                           f"{', '.join('{' + k + '}' for k in sorted(fields))}"]) from None

def build_plan(config: dict, check_model: bool = True) -> Plan:
    """Validate `config` and resolve it into a Plan. Raises ConfigError / DatasetError with a fix in the text."""
    cfg = load_and_validate(config)
    adapter = get_adapter(cfg["dataset"])
    # Report a missing dataset and a missing model together: both must be fixed before any job can run.
    try:
        adapter.check()
    except DatasetError as e:
        problems = [str(e)]
        if model_kind(cfg) == "pretrained":
            problems.append(model_problem(cfg["model"]["source"], cfg["model"]["revision"])
                            or model_note(cfg["model"]["source"], cfg["model"]["revision"]))
        raise ConfigError([p for p in problems if p]) from None
    infos = adapter.classes()
    names = [c.name for c in infos]
    problems = []
    if not names:
        problems.append("dataset: no classes found. Fix: check dataset.root / dataset.class_names.")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        problems.append(f"dataset: duplicate class names {dups[:5]}; labels would be ambiguous. "
                        f"Fix: make each class name unique in the class list.")
    selected = list(range(len(names)))
    if cfg["dataset"]["classes"] is not None:
        selected = []
        for c in cfg["dataset"]["classes"]:
            if isinstance(c, int) and 0 <= c < len(names):
                selected.append(c)
            elif isinstance(c, str) and c in names:
                selected.append(names.index(c))
            else:
                close = difflib.get_close_matches(str(c), names, n=3)
                problems.append(f"dataset.classes: {c!r} is not a class of '{adapter.name}'"
                                + (f" (did you mean {', '.join(close)}?)" if close else
                                   f"; valid: names or indices 0..{len(names) - 1}"))
        if len(set(selected)) != len(selected):
            problems.append("dataset.classes: a class is listed twice. Fix: list each class once.")
        selected = sorted(set(selected))
    overrides = cfg["prompts"]["overrides"]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            problems.append(f"prompts.overrides: {key!r} is not a class name of '{adapter.name}'"
                            + (f" (did you mean {', '.join(close)}?)" if close else "")
                            + ". Fix: key overrides by the dataset's class name (see prompts.csv).")
    if check_model and model_kind(cfg) == "pretrained":
        mp = model_problem(cfg["model"]["source"], cfg["model"]["revision"])
        if mp:
            problems.append(mp)
    if problems:
        raise ConfigError(problems)

    template = cfg["prompts"]["template"] or adapter.default_template
    ids = class_ids(names)
    classes = []
    for i in selected:
        info, ov = infos[i], overrides.get(names[i], {})
        fields = {"raw_name": info.name, "index": i, **info.fields}
        prompt = ov.get("prompt") or _format_prompt(template, fields, "prompts.template")
        classes.append(ClassPlan(index=i, name=info.name, id=ids[i], prompt=prompt,
                                 seed=int(ov.get("seed", cfg["seed"])),
                                 n_generated=int(ov.get("n_generated", cfg["generation"]["n_generated"]))))
    image_size = cfg["dataset"]["image_size"] or adapter.image_size
    if cfg["generation"]["resolution"] < image_size:
        raise ConfigError([f"generation.resolution: {cfg['generation']['resolution']} is below the dataset's "
                           f"image size {image_size}; images would be upsampled. Fix: resolution >= {image_size} "
                           f"(SDXL-Turbo's native 512)."])
    problems = fitted_problems(cfg, image_size)
    if cfg["ablation"]["pda"] and not (adapter.has_real_data and cfg["evaluation"]["activate"]):
        problems.append("ablation.pda: the PDA ablation trains on each variant and tests on the real test set, so it "
                        "needs a dataset with real images and evaluation.activate: true. Fix: enable evaluation "
                        "(with such a dataset) or set ablation.pda: false.")
    if problems:
        raise ConfigError(problems)
    model_dir = tiny_model_dir(cfg) or fitted_model_dir(cfg)
    return Plan(cfg=cfg, classes=classes, all_class_names=names, image_size=image_size, mean=adapter.mean,
                std=adapter.std, has_real_data=adapter.has_real_data, model_dir=model_dir,
                model_source=model_dir or cfg["model"]["source"], model_kind=model_kind(cfg))

__all__ = ["ClassPlan", "ConfigError", "DatasetError", "Plan", "build_plan"]
