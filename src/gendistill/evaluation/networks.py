"""The evaluation networks (torch modules): the field's ConvNet and ResNet-18 with a small-image stem. Which names
exist and what they build is the registry, evaluation/models.py."""

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


# At and above this resolution ResNet-18 keeps torchvision's ImageNet stem (7x7 stride 2 + max-pool), as the
# field evaluates ImageNet-1k at 224 px; below it, a 3x3 stride-1 stem without max-pool (CIFAR-style).
IMAGENET_STEM_FROM = 128


def resnet18(num_classes: int, image_size: int = 32) -> nn.Module:
    import torchvision  # ~0.5 s: only where a ResNet is built

    m = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if image_size < IMAGENET_STEM_FROM:
        m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)  # small images: no 7x7/stride-2 stem
        m.maxpool = nn.Identity()
    return m


__all__ = ["ConvNet", "IMAGENET_STEM_FROM", "resnet18", "torch"]
