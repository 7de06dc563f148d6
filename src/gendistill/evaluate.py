"""One evaluation job (the evaluate rule): build the training set (distilled / random real subset / full real),
train, test; with a recipe `lr_search` (evaluation.lr_search), train once per learning rate and keep the best on
the test set, as DD-Ranking does (labelled so in `accuracy_kind`). The same steps build a kd cache (the kd_cache
rule: the teacher's outputs for the run's batches, stored once; evaluation/kd_cache.py).

With evaluation.processes N > 1 every step runs in each of N processes that torchrun started
(gendistill/evaluate_torchrun.py), which train one model together (evaluation/runtime.py); rank 0's result is
the job's.

It sits above both evaluation/ (training, models, real data) and teacher/ (the teacher's logits and the soft labels
that the kd and soft regimes train on), which itself trains with evaluation/'s low modules."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from .datasets import get_adapter
from .distilled.package import load_distilled
from .evaluation import kd_cache as kd_cache_file
from .evaluation.data import DeviceImages, FileSource
from .evaluation.models import model_label
from .evaluation.progress import EpochProgress
from .evaluation.real import real_source, select_subset, test_subset
from .evaluation.runs import REGIMES, file_set, generated_set
from .evaluation.runtime import Runtime
from .evaluation.train import fit_and_test
from .imageio import sha256_file
from .teacher.classifier import load_teacher, logits_and_features
from .teacher.soft_labels import load_aligned

log = logging.getLogger("gendistill.evaluate")


@dataclass
class EvalSpec:
    """What one evaluation job trains on and how: the evaluate rule's params and inputs, decoded
    (workflow/scripts/evaluate.py). JSON-able: torchrun's processes read it from a file."""

    set_name: str  # distilled, random_subset, kmeans_real, rded, full, method:<name> (evaluation/runs.py)
    model: str
    seed: int
    dataset: dict
    labels: list[int]  # the run's class labels
    num_classes: int
    recipe: dict
    per_class_counts: dict[int, int] | None = None  # a random real subset: label -> images
    max_test_images: int | None = None
    resolution: int | None = None
    distilled_path: str | None = None  # the file of a packaged set (runs.file_set)
    device: str = "cpu"
    workers: int = 0  # DataLoader workers per process (image files)
    label_regime: str = "hard"
    kd: dict | None = None
    soft_labels_path: str | None = None
    teacher_path: str | None = None
    kd_cache_path: str | None = None  # labels kd with evaluation.kd.cache: the stored teacher outputs
    eval_key: str | None = None
    runtime: dict = field(default_factory=dict)  # evaluation.channels_last, compile (runs.runtime_settings)

    @classmethod
    def from_json(cls, obj: dict) -> EvalSpec:
        obj = dict(obj)
        if obj.get("per_class_counts"):
            obj["per_class_counts"] = {int(k): int(v) for k, v in obj["per_class_counts"].items()}
        return cls(**obj)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def name(self) -> str:
        return f"{self.eval_key or self.set_name}/{self.model}/seed{self.seed}"


@dataclass
class TrainingSet:
    """The training set of a job, on the device, with what its regime trains on."""

    source: object  # evaluation/data.py
    mean: list
    std: list
    resolution: int
    kd: dict | None = None
    soft: object = None  # fixed soft labels [N, C] (regime soft)
    teacher: object = None  # the teacher run online (regime kd)
    teacher_sha: str | None = None
    kd_cache: object = None  # kd_cache.KDCache (regime kd with the cache)


def _teacher(teacher_path: str, resolution: int):
    teacher, meta = load_teacher(teacher_path)
    if meta["resolution"] != resolution:
        raise ValueError(f"teacher trained at {meta['resolution']} px, evaluation at {resolution} px")
    return teacher


def training_set(spec: EvalSpec, device: str) -> TrainingSet:
    """Step 1: the training set (the package's uint8 images on `device`, or the real split: a seeded random
    subset, the whole) and its regime's targets: the package's soft labels or the teacher's logits of a real
    set's images (soft), the teacher itself or its stored outputs (kd)."""
    if spec.label_regime not in REGIMES:
        raise ValueError(f"label regime {spec.label_regime!r}; use one of {', '.join(REGIMES)}")
    adapter = get_adapter(spec.dataset)
    resolution = spec.resolution or adapter.image_size
    kd = spec.kd if spec.label_regime != "hard" else None
    if file_set(spec.set_name):  # a generated set (the distilled set, a method's), or a selection baseline's
        d = load_distilled(spec.distilled_path)
        source = DeviceImages(d["images_uint8"], d["labels"], d["mean"], d["std"], resolution, device=device)
        out = TrainingSet(source, list(d["mean"]), list(d["std"]), resolution, kd)
        if spec.label_regime == "soft" and generated_set(spec.set_name):  # its package's sidecar
            s = load_aligned(spec.soft_labels_path, d, spec.distilled_path)
            out.soft, out.teacher_sha = s["logits"], s["teacher_sha256"]
            out.kd = {**kd, "temperature": s["temperature"]}
        elif spec.label_regime == "soft":  # a baseline's images: the teacher labels them here, as a real subset's
            out.soft, _ = logits_and_features(_teacher(spec.teacher_path, resolution), source, device)
            out.soft = out.soft.cpu()
            out.teacher_sha = sha256_file(spec.teacher_path)
    else:
        select = None
        if spec.set_name == "random_subset":
            counts = {int(k): int(v) for k, v in spec.per_class_counts.items()}
            select = lambda y: select_subset(y, counts, spec.seed)  # noqa: E731
        mean, std = list(adapter.mean), list(adapter.std)
        keep = list(spec.labels)
        source = real_source(adapter, "train", keep, resolution, mean, std, spec.workers, select, device=device)
        if isinstance(source, FileSource) and fits_on_gpu(source.nbytes, device):
            source = source.held_on(device)  # a random subset of ImageNet: decoded once, not every epoch
        out = TrainingSet(source, mean, std, resolution, kd)
        if spec.label_regime == "soft":
            out.soft, _ = logits_and_features(_teacher(spec.teacher_path, resolution), source, device)
            out.soft = out.soft.cpu()
            out.teacher_sha = sha256_file(spec.teacher_path)
    if spec.label_regime == "kd" and spec.kd_cache_path:
        out.kd_cache = kd_cache_file.load(spec.kd_cache_path)
        out.teacher_sha = out.kd_cache.data["meta"].get("teacher_sha256")
    elif spec.label_regime == "kd":
        out.teacher, out.teacher_sha = _teacher(spec.teacher_path, resolution), sha256_file(spec.teacher_path)
    return out


# A streamed real training set is held on the GPU as uint8 when it takes at most this share of its memory.
HELD_SHARE = 0.25


def fits_on_gpu(nbytes: int, device: str) -> bool:
    """Whether images of `nbytes` (uint8) fit beside the training on GPU `device` (never on the CPU, whose
    memory the job's mem_mb bounds: a streamed set stays streamed there)."""
    import torch

    if torch.device(device).type != "cuda":
        return False
    return nbytes <= HELD_SHARE * torch.cuda.get_device_properties(torch.device(device)).total_memory


def test_set(spec: EvalSpec, train: TrainingSet, device: str):
    """Step 2: the real test split of the run's classes, read at recipe test_resize (evaluation.test_resize) when
    given: uint8 on the device, or image files read by DataLoader workers."""
    adapter = get_adapter(spec.dataset)
    return real_source(
        adapter,
        "test",
        list(spec.labels),
        train.resolution,
        train.mean,
        train.std,
        spec.workers,
        test_subset(spec.max_test_images),
        spec.recipe.get("test_resize"),
        device,
    )


def train_and_test(spec: EvalSpec, train: TrainingSet, test, rt: Runtime) -> dict:
    """Step 3: train and test (once, or once per lr of the recipe's lr_search)."""

    def fit_once(fit_recipe: dict) -> dict:
        progress = EpochProgress(fit_recipe["epochs"], spec.name) if rt.is_main else None
        try:
            return fit_and_test(
                train.source,
                test,
                spec.num_classes,
                spec.model,
                spec.seed,
                fit_recipe,
                rt.device,
                progress,
                label_set=list(spec.labels),
                soft_logits=train.soft,
                kd=train.kd,
                teacher=train.teacher,
                runtime=rt,
                kd_cache=train.kd_cache,
            )
        finally:
            if progress is not None:
                progress.close()

    return search_lr(fit_once, spec.recipe) if spec.recipe.get("lr_search") else fit_once(spec.recipe)


def result_record(spec: EvalSpec, train: TrainingSet, res: dict, rt: Runtime) -> dict:
    """Step 4: what the job's metrics JSON holds beside the accuracies: the set, model, seed, recipe, regime (its
    KD keys and teacher) and how it ran (world_size; runtime: device, precision, layout, compile)."""
    res.update(
        {
            "set": spec.set_name,
            "model": spec.model,
            "model_label": model_label(spec.model, train.resolution),
            "seed": spec.seed,
            "recipe": spec.recipe,
            "chance": 1.0 / len(spec.labels),
            "resolution": train.resolution,
            "labels": spec.label_regime,
            "world_size": rt.world_size,
            "runtime": rt.record(),
        }
    )
    if spec.eval_key is not None:
        res["eval_key"] = spec.eval_key
    if spec.label_regime != "hard":
        res.update({"kd": train.kd, "teacher_sha256": train.teacher_sha})
    if train.kd_cache is not None:
        res["kd_cache"] = {k: train.kd_cache.data[k] for k in ("seed", "top_k", "temperature")}
    return res


def run_job(spec: EvalSpec, rt: Runtime | None = None) -> dict:
    """Train `spec.model` on one set and test it on the real test set (in this process, or as process
    `rt.rank` of several: every process returns the same result)."""
    rt = rt or Runtime(device=spec.device)
    train = training_set(spec, rt.device)
    test = test_set(spec, train, rt.device)
    if rt.is_main:
        log.info(
            "%s: %d train images, %d test images at %d px (%s), recipe %s, labels %s%s, runtime %s",
            spec.name,
            len(train.source),
            len(test),
            train.resolution,
            type(train.source).__name__,
            spec.recipe,
            spec.label_regime,
            f" (KD {train.kd}{', cached' if train.kd_cache is not None else ''})" if train.kd else "",
            rt.record(),
        )
    res = result_record(spec, train, train_and_test(spec, train, test, rt), rt)
    if rt.is_main:
        log.info("accuracy %.4f (%s)", res["accuracy"], res["accuracy_kind"])
    return res


def build_kd_cache(spec: EvalSpec, out_path: str, cache: dict, rt: Runtime | None = None) -> dict:
    """The kd_cache job: the teacher's outputs for every batch the run's students will see (the training set of
    `spec`, its recipe, `cache` = evaluation.kd's cache_seed and cache_top_k), stored at `out_path`."""
    rt = rt or Runtime(device=spec.device)
    train = training_set(spec, rt.device)  # regime kd without a cache path: with the teacher
    teacher = train.teacher
    progress = EpochProgress(spec.recipe["epochs"], f"kd cache {spec.eval_key}")
    meta = {"teacher_sha256": sha256_file(spec.teacher_path), "set": spec.set_name, "eval_key": spec.eval_key}
    try:
        rec = kd_cache_file.build(
            train.source,
            spec.recipe,
            teacher,
            spec.kd["temperature"],
            cache["cache_top_k"],
            cache["cache_seed"],
            spec.num_classes,
            out_path,
            rt,
            meta,
            progress,
        )
    finally:
        progress.close()
    log.info("kd cache %s: %s", out_path, rec)
    return {**rec, **meta}


LR_SELECTED = ", lr selected on test"


def search_lr(fit_once, recipe: dict) -> dict:
    """DD-Ranking's learning-rate search: train with each lr of recipe lr_search (seed and recipe otherwise the
    same) and keep the run with the best test accuracy (the first at a tie, as its strict `acc > best_acc`). This
    selects on the test set: `accuracy_kind` says so, and `lr_search` records every lr's accuracy."""
    tried = []
    for lr in recipe["lr_search"]:
        res = fit_once({**recipe, "lr": lr})
        log.info("lr %g: accuracy %.4f (%s)", lr, res["accuracy"], res["accuracy_kind"])
        tried.append((lr, res))
    best_lr, best = max(tried, key=lambda t: (t[1]["accuracy"], -tried.index(t)))
    best["accuracy_kind"] += LR_SELECTED
    best["lr_search"] = {
        "selected_lr": best_lr,
        "accuracy_by_lr": {str(lr): r["accuracy"] for lr, r in tried},
        "selected_on": "test accuracy (DD-Ranking's search)",
    }
    return best
