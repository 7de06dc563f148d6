"""Which evaluation runs a config asks for, and the recipe, labels and inputs of each: the one definition the
workflow's evaluate rule, the results table and the report read.

An evaluation run is (set, label regime, training augmentation on/off) x model x seed. Its key names the
`{set}` wildcard of `eval/{set}/{model}/seed{seed}.json`:

- `distilled`, `random_subset`, `full`: the run's first label regime (evaluation.labels), with training
  augmentation: the paths every config had before regimes were added, so their results stay cached;
- `kmeans_real`, `rded`: the selection baselines (evaluation.baselines), real images picked with the teacher
  (gendistill.teacher.baselines), evaluated like the random subset in every regime;
- a generation method of ablation.methods (gendistill.ablation.variants): a generated set of its own, evaluated
  under the distilled set's keys in its scope (`ablation/methods/<name>/eval/distilled.soft/...`); its results'
  set is `method:<name>`;
- `distilled.kd`, `random_subset.soft`, ...: another regime of evaluation.labels;
- `... .noaug`: the same without training augmentation (evaluation.scores.ars: DD-Ranking's ARS).

Label regimes ("Rethinking Dataset Distillation: Hard Truths about Soft Labels", arXiv 2604.18811: HL, SL, SL+KD):
hard = cross-entropy on the stored labels; soft = the teacher's logits of each stored image, computed once
(dataset/soft_labels.pt for the distilled set); kd = the teacher run online on every augmented batch the student
sees (knowledge distillation). Every distilled run has its random real subset in the same regime and recipe. The
full real training set (the ceiling, and DD-Ranking's acc(real, hard)) is trained with hard labels only, with the
keys of baselines.full_recipe over the evaluation's recipe. Hard-label runs train without mixing when
mix_hard_labels is false, and with lr_search on, the distilled and random-subset runs search their learning rate
on the test set (DD-Ranking's search, labelled so).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..devices import gpu_count, gpu_visible
from .protocols import REAL_DATA_RECIPE, TEACHER_RECIPES, test_resize_8_7
from .protocols import record as protocol_record

REGIMES = ("hard", "soft", "kd")
# the selection baselines: sets of real images (or RDED's crops of them) that the teacher picks, in a file like the
# distilled set's (baselines/<name>/set.pt)
SELECTION_BASELINES = ("kmeans_real", "rded")
SETS = ("distilled", "random_subset", *SELECTION_BASELINES, "full")
# sets read from a packaged file (the others are drawn from the real training split in the job)
FILE_SETS = ("distilled", *SELECTION_BASELINES)
# the set name of a generation method's set (ablation.methods): generated like the distilled set, with some of its
# generation and selection keys overridden
METHOD_PREFIX = "method:"
NOAUG = "noaug"
# every key evaluation runs can have (the `{set}` wildcard constraint)
KEY_PATTERN = rf"({'|'.join(SETS)})(\.({'|'.join(REGIMES)}))?(\.{NOAUG})?"

BASE_RECIPE_KEYS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule", "train_augment")
# Recipe keys added to a run's recipe only when they differ from these defaults: a config that does not use them
# keeps its params, so its evaluations stay cached (Snakemake reruns a job when its params change).
OPTIONAL_RECIPE_KEYS = {
    "augment": "crop_flip",
    "mix": "none",
    "step_epoch": None,
    "decay_norm_and_bias": True,
    "accuracy": "final",
    "test_resize": None,
    # mixed precision decides the floats a run computes (bf16 keeps 8 significant bits): part of the recipe, like
    # the lr; auto follows the device as evaluation.device: auto does (bf16 on a GPU that has it, off on the CPU)
    "amp": "auto",
}
KD_DEFAULTS = {"t_squared": True}
KD_CACHE_KEYS = ("cache", "cache_top_k", "cache_seed")
# How an evaluation job runs, not what it computes (the same floats up to the order of sums): never params, so
# changing them reruns nothing; the job reads them from GENDISTILL_EVAL_RUNTIME (workflow/rules/common.smk).
RUNTIME_KEYS = ("processes", "channels_last", "compile")


class EvalRun(NamedTuple):
    key: str
    set: str  # distilled, random_subset, kmeans_real, rded, full
    labels: str  # hard, soft, kd
    train_augment: bool


class EvalJob(NamedTuple):
    """What one evaluation job (the evaluate rule: a run's, or an ablation variant's) trains on and how."""

    set: str  # distilled, random_subset, kmeans_real, rded, full
    labels: str  # hard, soft, kd
    recipe: dict
    data: str | None = None  # the packaged set it trains on (a distilled set, a selection baseline's set)
    counts: dict | None = None  # label -> real images per class (a random real subset)

    @property
    def reads_soft_labels(self) -> bool:
        """Soft labels of a generated set are its package's sidecar (dataset/soft_labels.pt for the distilled set)."""
        return generated_set(self.set) and self.labels == "soft"

    @property
    def reads_teacher(self) -> bool:
        """The teacher itself: run online (kd), or labelling a real set's images once (soft)."""
        return self.labels == "kd" or (self.labels == "soft" and not generated_set(self.set))


def method_set(name: str) -> str:
    """The set name of generation method `name` (ablation.methods) in the results."""
    return f"{METHOD_PREFIX}{name}"


def is_method_set(set_name: str) -> bool:
    return set_name.startswith(METHOD_PREFIX)


def generated_set(set_name: str) -> bool:
    """A set the pipeline generated: the distilled set or a generation method's (soft labels: its sidecar)."""
    return set_name == "distilled" or is_method_set(set_name)


def file_set(set_name: str) -> bool:
    """A set read from a packaged file (distilled.pt's format): FILE_SETS and the generation methods' sets."""
    return set_name in FILE_SETS or is_method_set(set_name)


def label_regimes(cfg: dict) -> list[str]:
    """evaluation.labels as a list (a string in the config means one regime); the first is the run's own."""
    labels = cfg["evaluation"]["labels"]
    return [labels] if isinstance(labels, str) else list(labels)


def uses_teacher(cfg: dict) -> bool:
    """The evaluation trains with the teacher's labels (soft or kd), so the teacher rule must run."""
    return bool(set(label_regimes(cfg)) & {"soft", "kd"})


def parse_key(key: str, cfg: dict) -> EvalRun:
    m = re.fullmatch(KEY_PATTERN, key)
    if not m:
        raise ValueError(f"{key!r} is not an evaluation run key ({KEY_PATTERN})")
    set_name, regime, noaug = m.group(1), m.group(3), m.group(4)
    if set_name == "full":
        regime = "hard"
    return EvalRun(key, set_name, regime or label_regimes(cfg)[0], noaug is None)


def key_of(set_name: str, regime: str, train_augment: bool, cfg: dict) -> str:
    primary = label_regimes(cfg)[0]
    key = set_name if set_name == "full" or regime == primary else f"{set_name}.{regime}"
    return key if train_augment else f"{key}.{NOAUG}"


def selection_baselines(cfg: dict, has_real_data: bool) -> list[str]:
    """The selection baselines the config asks for (evaluation.baselines.kmeans_real, .rded), in table order."""
    base = cfg["evaluation"]["baselines"]
    return [b for b in SELECTION_BASELINES if has_real_data and base.get(b)]


def eval_runs(cfg: dict, has_real_data: bool) -> list[EvalRun]:
    """Every evaluation run of the config, in table order: per regime the distilled set, its random real
    subset and the selection baselines (then the same without augmentation when ARS is on), then the full data."""
    base = cfg["evaluation"]["baselines"]
    sets = ["distilled"] + (["random_subset"] if has_real_data and base["random_subset"] else [])
    sets += selection_baselines(cfg, has_real_data)
    augments = [True, False] if cfg["evaluation"]["scores"]["ars"] else [True]
    keys = [key_of(s, r, a, cfg) for r in label_regimes(cfg) for a in augments for s in sets]
    if has_real_data and base["full"]:
        keys.append("full")
    return [parse_key(k, cfg) for k in keys]


def seeds(cfg: dict, run: EvalRun) -> list[int]:
    """The training seeds of a run: evaluation.seeds, or baselines.full_seeds for the full data when given."""
    ev = cfg["evaluation"]
    if run.set == "full" and ev["baselines"].get("full_seeds"):
        return list(ev["baselines"]["full_seeds"])
    return list(ev["seeds"])


def _optional(ev: dict) -> dict:
    out = {k: ev[k] for k, default in OPTIONAL_RECIPE_KEYS.items() if ev.get(k, default) != default}
    if out.get("amp") is False:  # YAML reads a bare `off` as false
        out["amp"] = "off"
    if ev.get("augment") == "rrc_flip":
        out["rrc_scale"] = list(ev["rrc_scale"])
    if ev.get("mix", "none") != "none":
        out["mix_beta"] = ev["mix_beta"]
    if ev.get("accuracy", "final") != "final":
        out["eval_every"] = ev["eval_every"]
        if ev.get("eval_after") is not None:
            out["eval_after"] = ev["eval_after"]
    return out


def recipe(cfg: dict, run: EvalRun) -> dict:
    """The training recipe of one evaluation run: the base keys, the optional ones in use, the full set's
    epochs (baselines.full_epochs, its lr step at half of them unless baselines.full_recipe says otherwise) and
    full_recipe's keys, no mixing for a hard-label run with mix_hard_labels false, the lr grid of a run that
    searches it (lr_search), and no augmentation for a .noaug run."""
    ev = cfg["evaluation"]
    out = {**{k: ev[k] for k in BASE_RECIPE_KEYS}, **_optional(ev)}
    if run.labels == "hard" and not ev.get("mix_hard_labels", True):
        out.pop("mix", None)
        out.pop("mix_beta", None)
    if run.set == "full":
        out["epochs"] = full_epochs(cfg)
        for k in ("step_epoch", "accuracy", "eval_every", "eval_after"):
            out.pop(k, None)
        out.update({k: v for k, v in (ev["baselines"].get("full_recipe") or {}).items() if v is not None})
        if out.get("mix", "none") == "none":
            out.pop("mix", None)
            out.pop("mix_beta", None)
    elif (ev.get("lr_search") or {}).get("activate"):
        out["lr_search"] = list(ev["lr_search"]["lrs"])
    if not run.train_augment:
        out["train_augment"] = False
    return out


def full_epochs(cfg: dict) -> int:
    """Epochs of a training on the full real training set: baselines.full_epochs, else evaluation.epochs."""
    ev = cfg["evaluation"]
    return ev["baselines"]["full_epochs"] or ev["epochs"]


def kd_settings(cfg: dict, regime: str = "soft") -> dict:
    """The KD loss keys of the soft and kd regimes (t_squared only when it is not the default); for regime kd with
    evaluation.kd.cache, also the cache's keys (evaluation/kd_cache.py: they decide the batches the student sees)."""
    kd = {k: v for k, v in cfg["evaluation"]["kd"].items() if k not in KD_CACHE_KEYS}
    for k, default in KD_DEFAULTS.items():
        if kd.get(k, default) == default:
            kd.pop(k, None)
    if regime == "kd" and kd_cached(cfg):
        kd.update({k: cfg["evaluation"]["kd"][k] for k in KD_CACHE_KEYS})
    return kd


def kd_cached(cfg: dict) -> bool:
    """The kd regime reads the teacher's outputs stored once (evaluation.kd.cache) instead of running it."""
    return bool(cfg["evaluation"]["kd"].get("cache"))


def runtime_settings(cfg: dict) -> dict:
    """The evaluation's runtime knobs (RUNTIME_KEYS): how many processes train one model, the channels-last
    layout, torch.compile."""
    return {k: cfg["evaluation"][k] for k in RUNTIME_KEYS}


def slot_settings(cfg: dict, take: bool) -> dict:
    """The GPU slots the evaluation's training jobs take (gendistill.evaluation.gpus): generation.gpus, the sample
    jobs' slots, and the wait's deadline, twice generation.server_timeout_seconds, as theirs. `take`: whether they
    take any: where Snakemake runs them on this machine (a cluster gives each job GPUs of its own) and they may train
    on a GPU (evaluation.device is not cpu). Runtime knobs: not params."""
    g = cfg["generation"]
    return {
        "gpus": g["gpus"],
        "timeout": 2 * float(g["server_timeout_seconds"]),
        "take": bool(take) and cfg["evaluation"]["device"] != "cpu",
    }


def real_data_recipe(cfg: dict) -> dict:
    """How a classifier of the real data (the teacher, the recogniser) trains, epochs aside: the evaluation's base
    keys (the repository's own recipe), or under a protocol the field's real-data recipe
    (protocols.REAL_DATA_RECIPE): a protocol's mixing, KD and model selection are for distilled sets."""
    ev = cfg["evaluation"]
    if ev.get("protocol"):
        return {k: REAL_DATA_RECIPE.get(k, ev[k]) for k in BASE_RECIPE_KEYS}
    return {k: ev[k] for k in BASE_RECIPE_KEYS}


def teacher_recipe(cfg: dict, resolution: int | None = None) -> dict:
    """How the teacher is trained on the real training split when no checkpoint is given: teacher.recipe field =
    real_data_recipe, epochs teacher.epochs, else baselines.full_epochs, else evaluation.epochs; a published recipe
    (protocols.TEACHER_RECIPES) with its own epochs unless teacher.epochs is set, torchvision's tested at
    Resize(size // 7 * 8) + CenterCrop(size) at the evaluation `resolution`."""
    t = cfg["teacher"]
    name = t.get("recipe", "field")
    if name == "field":
        return {**real_data_recipe(cfg), "epochs": t["epochs"] or full_epochs(cfg)}
    out = {**TEACHER_RECIPES[name], **({"epochs": t["epochs"]} if t["epochs"] else {})}
    resolution = resolution or cfg["evaluation"]["resolution"]
    if name == "torchvision" and resolution and test_resize_8_7(resolution) != resolution:
        out["test_resize"] = test_resize_8_7(resolution)
    return out


def evaluation_problems(cfg: dict, has_real_data: bool, resolution: int | None = None) -> list[str]:
    """Plan-time checks of the evaluation keys (protocol applied), each naming the fix; `resolution` is the
    evaluation's (evaluation.resolution or the dataset's image size)."""
    ev, problems = cfg["evaluation"], []
    regimes = label_regimes(cfg)
    if set(regimes) - {"hard"} and not (has_real_data and ev["activate"]):
        problems.append(
            f"evaluation.labels: {ev['labels']} trains with a teacher's labels, and no evaluation runs (no real "
            f"data or evaluation.activate: false). Fix: evaluation.labels: hard."
        )
    if ev["scores"]["ars"] and not ev["train_augment"]:
        problems.append(
            "evaluation.scores.ars compares runs with and without training augmentation, and "
            "evaluation.train_augment is false. Fix: train_augment: true, or scores.ars: false."
        )
    lo, hi = ev["rrc_scale"]
    if lo > hi:
        problems.append(f"evaluation.rrc_scale: [{lo}, {hi}] is not [low, high]. Fix: swap the two values.")
    problems += baseline_problems(cfg, has_real_data)
    if ev["step_epoch"] is not None and not 0 < ev["step_epoch"] < ev["epochs"]:
        problems.append(
            f"evaluation.step_epoch: {ev['step_epoch']} is not within the {ev['epochs']} epochs, so the learning "
            f"rate would never step. Fix: an epoch in 1..{ev['epochs'] - 1}, or null (half of the epochs)."
        )
    base = ev["baselines"]
    if base["full_accuracy"] is not None and base["full"] and has_real_data:
        problems.append(
            "evaluation.baselines.full_accuracy gives acc(real, hard) for HLR, and baselines.full measures it too. "
            "Fix: keep one (full_accuracy: null to use the measured full-data run, or full: false)."
        )
    problems += _runtime_problems(cfg)
    resolution = resolution or ev["resolution"]
    if ev["test_resize"] is not None and resolution and ev["test_resize"] < resolution:
        problems.append(
            f"evaluation.test_resize: {ev['test_resize']} is below the evaluation's {resolution} px, so no "
            f"{resolution} px centre crop exists. Fix: test_resize >= {resolution}, or null."
        )
    return problems


def _runtime_problems(cfg: dict) -> list[str]:
    """What the machine running the jobs cannot matter for: fp16 on the CPU, a cache of a teacher not run."""
    ev, problems = cfg["evaluation"], []
    if ev.get("amp") == "fp16" and ev["device"] == "cpu":
        problems.append(
            "evaluation.amp: fp16 with evaluation.device: cpu: torch has no fast float16 kernels on the CPU (and no "
            "gradient scaler there). Fix: amp: bf16 or off (auto: off on the CPU), or device: cuda."
        )
    if kd_cached(cfg) and "kd" not in label_regimes(cfg):
        problems.append(
            f"evaluation.kd.cache: true stores the teacher's outputs for the kd regime, and evaluation.labels "
            f"({ev['labels']}) has no kd: no teacher is run during training. Fix: add kd to evaluation.labels, or "
            f"kd.cache: false."
        )
    return problems


def trains_on_gpu(cfg: dict, local: bool) -> bool:
    """Whether the evaluation jobs train on GPUs, as far as the plan can tell before any job runs: device cuda;
    device auto with a GPU visible here (`local`: Snakemake runs the jobs on this machine), or on a cluster
    (a remote executor: the SLURM profile's evaluation jobs get GPUs)."""
    device = cfg["evaluation"]["device"]
    return device == "cuda" or (device == "auto" and (not local or gpu_visible()))


def job_gpus(cfg: dict, local: bool) -> int:
    """GPUs one evaluation job asks for: one per process where it trains on GPUs, else none."""
    return int(cfg["evaluation"]["processes"]) if trains_on_gpu(cfg, local) else 0


def training_slots(cfg: dict) -> list:
    """The GPU slots an evaluation job run here chooses among (gendistill.evaluation.gpus), or [] where it takes
    none (device cpu, a single unpinned slot; generation.gpus that name GPUs this machine does not have fail the
    sample jobs, saying so)."""
    from ..sampling.slots import SlotError, resolve_slots

    if cfg["evaluation"]["device"] == "cpu":
        return []
    try:
        slots = resolve_slots(cfg["generation"]["gpus"])
    except SlotError:
        return []
    return slots if len(slots) > 1 or slots[0].pinned else []


def machine_problems(cfg: dict, local: bool, gpu_limit: int | None) -> list[str]:
    """What the machines the jobs run on cannot do (checked where the workflow starts, before any job):
    processes above the GPUs a job can have (Snakemake's `--resources gpu=N` caps each job's request without a
    word, the GPUs visible here, or the GPU slots of generation.gpus), fp16 where device auto finds no GPU."""
    ev, problems = cfg["evaluation"], []
    n = int(ev["processes"])
    if local and trains_on_gpu(cfg, local):
        visible = gpu_count()
        limits = [(visible, "the GPUs visible here (CUDA_VISIBLE_DEVICES, the driver)")]
        if gpu_limit is not None:
            limits.append((int(gpu_limit), f"--resources gpu={gpu_limit} (or the profile's `resources: gpu`)"))
        available, source = min(limits, key=lambda lim: lim[0])
        if n > available:
            problems.append(
                f"evaluation.processes: {n} trains each evaluation on {n} GPUs, and a job here can have "
                f"{available}: {source}. Fix: processes: {max(available, 1)}, or give Snakemake more GPUs "
                f"(--resources gpu={n} on a machine that has them), or device: cpu (processes on the CPU)."
            )
    if local and not problems and (slots := training_slots(cfg)) and n > len(slots):
        gpus = cfg["generation"]["gpus"]
        problems.append(
            f"evaluation.processes: {n} trains each evaluation on {n} GPUs, and generation.gpus ({gpus}) gives "
            f"{len(slots)} GPU slot(s), the GPUs the workflow's jobs take here. Fix: processes: {len(slots)}, or "
            f"list {n} GPUs in generation.gpus (or gpus: auto), or device: cpu."
        )
    if local and ev.get("amp") == "fp16" and ev["device"] == "auto" and not gpu_visible():
        problems.append(
            "evaluation.amp: fp16 and no GPU is visible here, so device: auto trains on the CPU, where torch has no "
            "fast float16 kernels. Fix: amp: bf16 or auto, or run on a GPU machine."
        )
    return problems


def baseline_problems(cfg: dict, has_real_data: bool) -> list[str]:
    """Plan-time checks of the selection baselines and the fidelity measure, each naming the fix (the teacher
    they need is checked with the teacher's other uses: plan.teacher_problems)."""
    ev, problems = cfg["evaluation"], []
    base = ev["baselines"]
    for name in SELECTION_BASELINES:
        if not base.get(name):
            continue
        if not has_real_data:
            problems.append(
                f"evaluation.baselines.{name} selects real training images, and dataset "
                f"'{cfg['dataset']['name']}' has none. Fix: evaluation.baselines.{name}: false, or a dataset with "
                f"its real images (dataset.root)."
            )
        elif not ev["activate"]:
            problems.append(
                f"evaluation.baselines.{name} is a set to evaluate, and evaluation.activate is false. Fix: "
                f"evaluation.activate: true, or evaluation.baselines.{name}: false."
            )
    lo, hi = base["rded_scale"]
    if base.get("rded") and lo > hi:
        problems.append(f"evaluation.baselines.rded_scale: [{lo}, {hi}] is not [low, high]. Fix: swap the two values.")
    return problems


def rded_factor(cfg: dict, resolution: int) -> int:
    """RDED's factor: evaluation.baselines.rded_factor, or (auto) 2 at 128 px and above as RDED's ImageNet
    scripts, 1 below as its CIFAR and Tiny-ImageNet scripts."""
    f = cfg["evaluation"]["baselines"]["rded_factor"]
    return (2 if resolution >= 128 else 1) if f == "auto" else int(f)


def record(cfg: dict, protocol: dict | None, has_real_data: bool, resolution: int | None = None) -> dict:
    """The evaluation's provenance (before the runs): the protocol (title, sources, what it reports, notes, the keys
    the config overrode), the resolved evaluation keys, the teacher, and each run's regime and recipe."""
    ev = cfg["evaluation"]
    return {
        **protocol_record(ev.get("protocol")),
        "overridden": (protocol or {}).get("overridden", []),
        # the runtime knobs are each result's own record (world_size, runtime), not the evaluation's
        "evaluation": {k: v for k, v in ev.items() if k not in RUNTIME_KEYS},
        "label_regimes": label_regimes(cfg),
        "kd": kd_settings(cfg, "kd"),
        "teacher": (
            {**cfg["teacher"], "recipe_name": cfg["teacher"]["recipe"], "recipe": teacher_recipe(cfg, resolution)}
            if uses_teacher(cfg) or selection_baselines(cfg, has_real_data)
            else None
        ),
        "runs": {
            r.key: {
                "set": r.set,
                "labels": r.labels,
                "train_augment": r.train_augment,
                "seeds": seeds(cfg, r),
                "recipe": recipe(cfg, r),
            }
            for r in eval_runs(cfg, has_real_data)
        },
    }
