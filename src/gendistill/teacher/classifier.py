"""The teacher: a classifier of the real data that scores generated candidates (selection) and labels final
images with logits (soft labels).

Either trained on the real training set with the evaluation's own code (`evaluation.train.fit`, the same model
builder, resolution and normalisation as the evaluation) and the recipe teacher.recipe names (the evaluation's, or
a published one: evaluation/runs.py teacher_recipe), or loaded from a checkpoint: a file written here, or a plain
state dict of the evaluation's architecture (e.g. a torchvision ResNet-18 state dict for ImageNet-scale data,
`teacher.model: resnet18`). Either way the rule writes one file, `teacher/teacher.pt`, in the format below, and
`teacher/teacher.json` with its sha256, so everything downstream reads one thing. A trained teacher's test
accuracy is set beside the published accuracy of the teachers the KD protocols' sources load
(evaluation/protocols.py PUBLISHED_TEACHERS), with a warning when it is far below.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..atomic import atomic_path, write_text
from ..datasets import get_adapter
from ..evaluation.data import TensorSource
from ..evaluation.models import build_model
from ..evaluation.progress import EpochProgress
from ..evaluation.protocols import PUBLISHED_TEACHERS, TEACHER_GAP
from ..evaluation.real import fit_on_real
from ..evaluation.train import normalise
from ..imageio import sha256_file

FORMAT = "gendistill-teacher-v1"
log = logging.getLogger("gendistill.teacher")


def published_comparison(
    dataset: str, model_name: str, resolution: int, accuracy: float, all_classes: bool
) -> dict | None:
    """A trained teacher's test accuracy beside the published one of its dataset, architecture and resolution
    (None when none is published): comparable only when it learned every class of the dataset; `far_below` when
    it is more than TEACHER_GAP under it."""
    entry = PUBLISHED_TEACHERS.get((dataset, model_name, resolution))
    if entry is None:
        return None
    published, source = entry
    out = {"accuracy": published, "source": source, "comparable": all_classes}
    out["far_below"] = bool(all_classes and accuracy < published - TEACHER_GAP)
    if out["far_below"]:
        log.warning(
            "the teacher's real test accuracy %.4f is %.1f points below the %.4f of %s: its soft labels are "
            "weaker than the source's (teacher.checkpoint loads a published teacher; teacher.recipe, "
            "teacher.epochs train another).",
            accuracy,
            100 * (published - accuracy),
            published,
            source,
        )
    return out


def save_teacher(out_pt: str, out_json: str, model: torch.nn.Module, meta: dict, timing: dict | None = None) -> dict:
    """Write the teacher file (weights + meta: the same training gives the same bytes, so the same sha256) and
    its record (meta, sha256 and `timing`, which stays out of the weights file)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(Path(out_pt)) as tmp:
        torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, tmp)
    info = {**meta, **(timing or {}), "sha256": sha256_file(out_pt), "path": str(out_pt)}
    write_text(Path(out_json), json.dumps(info, indent=1, sort_keys=True))
    return info


def train_teacher(
    dataset: dict,
    labels: list[int],
    num_classes: int,
    model_name: str,
    seed: int,
    recipe: dict,
    resolution: int | None,
    max_test_images: int | None,
    device: str,
    out_pt: str,
    out_json: str,
    workers: int = 0,
) -> dict:
    """Train `model_name` on the real training split (classes `labels`) with the evaluation's recipe; test it on
    the real test split; write the teacher file and its record (sha256, test accuracy, recipe)."""
    adapter = get_adapter(dataset)
    res = resolution or adapter.image_size
    progress = EpochProgress(recipe["epochs"], f"teacher/{model_name}/seed{seed}")
    try:
        model, info, ev = fit_on_real(
            "teacher",
            adapter,
            labels,
            res,
            num_classes,
            model_name,
            seed,
            recipe,
            max_test_images,
            device,
            workers,
            progress,
            eval_batch=max(recipe["batch_size"], 256),
        )
    finally:
        progress.close()
    meta = {
        "source": "trained",
        "model": model_name,
        "num_classes": num_classes,
        "resolution": res,
        "labels": list(labels),
        "seed": seed,
        "recipe": recipe,
        "mean": list(adapter.mean),
        "std": list(adapter.std),
        "test_accuracy": ev["accuracy"],
        "n_test": ev["n_test"],
        "n_train": info["n_train"],
        "final_loss": info["final_loss"],
    }
    published = published_comparison(dataset["name"], model_name, res, ev["accuracy"], len(set(labels)) == num_classes)
    if published is not None:
        meta["published_teacher"] = published
    return save_teacher(out_pt, out_json, model.cpu(), meta, timing={"train_seconds": info["train_seconds"]})


def import_checkpoint(
    checkpoint: str,
    model_name: str,
    num_classes: int,
    resolution: int,
    labels: list[int],
    mean,
    std,
    out_pt: str,
    out_json: str,
) -> dict:
    """Load a checkpoint from a path (this module's format, or a state dict of `model_name`, optionally under a
    'state_dict' / 'model' key) into the evaluation's architecture, strictly, and write it as the teacher file."""
    model = load_checkpoint(checkpoint, model_name, num_classes, resolution)
    meta = {
        "source": "checkpoint",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint),
        "model": model_name,
        "num_classes": num_classes,
        "resolution": resolution,
        "labels": list(labels),
        "mean": list(mean),
        "std": list(std),
    }
    return save_teacher(out_pt, out_json, model, meta)


def load_checkpoint(path: str, model_name: str, num_classes: int, resolution: int) -> torch.nn.Module:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"teacher.checkpoint: {path} does not exist. Fix: give the path of a state dict of "
            f"the {model_name} architecture, or set teacher.checkpoint: null to train one."
        )
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ValueError(
            f"teacher.checkpoint: {path} holds a {type(obj).__name__}, not a state dict. Fix: save "
            f"model.state_dict() (torch.save) and point teacher.checkpoint at that file."
        )
    obj = {k.removeprefix("module."): v for k, v in obj.items()}  # saved from DataParallel/DDP
    model = build_model(model_name, num_classes, resolution)
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"teacher.checkpoint: {path} does not fit teacher.model {model_name!r} with {num_classes} "
            f"classes at {resolution} px: {str(e).splitlines()[0]} Fix: set teacher.model to the "
            f"checkpoint's architecture (and evaluation.resolution to its input size)."
        ) from None
    return model


def load_teacher(path: str) -> tuple[torch.nn.Module, dict]:
    """The teacher written by train_teacher / import_checkpoint: (model in eval mode, meta)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        raise ValueError(f"{path} is not a gendistill teacher file. Fix: delete it and rerun (rule teacher).")
    meta = obj["meta"]
    model = build_model(meta["model"], meta["num_classes"], meta["resolution"])
    model.load_state_dict(obj["state_dict"], strict=True)
    return model.eval(), meta


@torch.no_grad()
def logits_and_features(
    model: torch.nn.Module, source, device: str = "cpu", bs: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits [N, C] and penultimate features [N, D] (the input of its last linear layer) for
    every image of a source (evaluation/data.py), in the source's order."""
    model = model.to(device).eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    captured = []
    hook = last.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach().flatten(1).cpu()))
    logits = []
    try:
        for xb, _ in source.batches(torch.arange(len(source)), bs):
            logits.append(model(xb.to(device)).float().cpu())
    finally:
        hook.remove()
    if not logits:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(logits), torch.cat(captured).float()


def images_source(images_uint8_nhwc, mean, std, resolution: int):
    """uint8 [N, H, W, 3] images as a source at the teacher's resolution and normalisation."""
    x = normalise(images_uint8_nhwc, mean, std)
    return TensorSource(x, torch.zeros(len(x), dtype=torch.long), resolution)
