"""The evaluation-model registry: every network an evaluation, the teacher or the recogniser can train, by name.

The names drive the config schema's three model enums (evaluation.models, teacher.model, recognition.model; a test
checks they agree) and the workflow's `{model}` wildcard constraint (common.smk derives it from MODELS). Adding a
model = one entry here (its builder in evaluation/networks.py) + the three enum lines in the schema + a README row.
This module imports no torch (the workflow reads the names when it builds the DAG); `build_model` imports the
networks when it builds one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

# Below this resolution ResNet-18 uses the small-image stem (networks.IMAGENET_STEM_FROM, kept equal by a test).
IMAGENET_STEM_FROM = 128


def convnet_depth(image_size: int) -> int:
    """D3 for 32 px, D4 for 64 px (final feature map 4x4), the field's convention."""
    depth = 3
    while image_size // 2 ** (depth + 1) >= 4:
        depth += 1
    return depth


# The builders import the torch modules when they build one (deferred: the DAG reads names only, without torch).
def _convnet(depth_of):
    def build(num_classes: int, image_size: int):
        from .networks import ConvNet

        return ConvNet(num_classes, image_size, depth_of(image_size))

    return build


def _resnet18(num_classes: int, image_size: int):
    from .networks import resnet18

    return resnet18(num_classes, image_size)


class EvalModel(NamedTuple):
    name: str
    description: str
    label: Callable[[int], str]  # image size -> the name printed in tables ("ConvNet-D3", "ResNet-18 (224 px)")
    build: Callable[[int, int], object]  # (num_classes, image size) -> a freshly initialised torch module


MODELS = {
    m.name: m
    for m in (
        EvalModel(
            "convnet",
            "ConvNet-D3 at 32 px, D4 at 64 px (width 128, instance norm, avg-pool): the field's standard",
            lambda size: f"ConvNet-D{convnet_depth(size)}",
            _convnet(convnet_depth),
        ),
        EvalModel(
            "convnet_d3",
            "ConvNet-D3 at every resolution (the ECCV 2024 challenge's evaluation network, also at 64 px)",
            lambda size: "ConvNet-D3 (fixed depth)",
            _convnet(lambda size: 3),
        ),
        EvalModel(
            "resnet18",
            "torchvision's ResNet-18; below 128 px a 3x3 stride-1 stem without max-pool (CIFAR-style)",
            lambda size: "ResNet-18" + (f" ({size} px)" if size >= IMAGENET_STEM_FROM else ""),
            _resnet18,
        ),
    )
}


def _known(name: str) -> EvalModel:
    if name not in MODELS:
        raise ValueError(f"unknown evaluation model {name!r}; use one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, num_classes: int, image_size: int):
    """A freshly initialised network (torch module) of registry entry `name`."""
    return _known(name).build(num_classes, image_size)


def model_label(name: str, image_size: int) -> str:
    return _known(name).label(image_size)
