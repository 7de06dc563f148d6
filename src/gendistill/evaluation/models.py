"""Evaluation networks: the field's ConvNet-D{3,4} and ResNet-18 with a small-image stem."""

from __future__ import annotations

import torch
from torch import nn


class ConvNet(nn.Module):
    """`depth` blocks of conv3x3(128) -> instance norm -> ReLU -> avg-pool 2, then one linear layer.

    Instance norm is GroupNorm with one group per channel (affine), as in the dataset-distillation literature.
    """

    def __init__(self, num_classes: int, image_size: int, depth: int, width: int = 128, channels: int = 3):
        super().__init__()
        layers, c = [], channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(c, width, 3, padding=1),
                nn.GroupNorm(width, width, affine=True),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2, 2),
            ]
            c = width
        self.features = nn.Sequential(*layers)
        side = image_size // 2**depth
        self.classifier = nn.Linear(width * side * side, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def convnet_depth(image_size: int) -> int:
    """D3 for 32 px, D4 for 64 px (final feature map 4x4), the field's convention."""
    depth = 3
    while image_size // 2 ** (depth + 1) >= 4:
        depth += 1
    return depth


# At and above this resolution ResNet-18 keeps torchvision's ImageNet stem (7x7 stride 2 + max-pool), as the
# field evaluates ImageNet-1k at 224 px; below it, a 3x3 stride-1 stem without max-pool (CIFAR-style).
IMAGENET_STEM_FROM = 128


def resnet18(num_classes: int, image_size: int = 32) -> nn.Module:
    import torchvision

    m = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if image_size < IMAGENET_STEM_FROM:
        m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)  # small images: no 7x7/stride-2 stem
        m.maxpool = nn.Identity()
    return m


def build_model(name: str, num_classes: int, image_size: int) -> nn.Module:
    if name == "convnet":
        return ConvNet(num_classes, image_size, convnet_depth(image_size))
    if name == "resnet18":
        return resnet18(num_classes, image_size)
    raise ValueError(f"unknown evaluation model {name!r}; use convnet or resnet18")


def model_label(name: str, image_size: int) -> str:
    if name == "convnet":
        return f"ConvNet-D{convnet_depth(image_size)}"
    return "ResNet-18" + (f" ({image_size} px)" if image_size >= IMAGENET_STEM_FROM else "")


__all__ = ["ConvNet", "build_model", "convnet_depth", "model_label", "resnet18", "torch"]
