"""Dataset adapters chosen by `dataset.name` in config."""

from .base import ClassInfo, DatasetAdapter, DatasetError
from .cifar import Cifar10, Cifar100
from .digits import Digits
from .imagefolder import ClassList, ImageFolder
from .imagenet import ImageNet
from .tinyimagenet import TinyImageNet

ADAPTERS = {a.name: a for a in (Cifar10, Cifar100, TinyImageNet, ImageNet, ImageFolder, ClassList, Digits)}


def get_adapter(cfg: dict) -> DatasetAdapter:
    try:
        cls = ADAPTERS[cfg["name"]]
    except KeyError:
        raise DatasetError(
            f"dataset.name = {cfg.get('name')!r} is not a known dataset; use one of: {', '.join(sorted(ADAPTERS))}"
        ) from None
    return cls(cfg)


__all__ = ["ADAPTERS", "ClassInfo", "DatasetAdapter", "DatasetError", "get_adapter"]
