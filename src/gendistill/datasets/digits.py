"""scikit-learn's bundled handwritten digits (1,797 8x8 images), upsampled to RGB, for the offline demo.

It ships inside scikit-learn, so the demo's evaluation numbers are real without any download. The split is a
seeded stratified train/test split.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .base import ClassInfo, DatasetAdapter, DatasetError

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class Digits(DatasetAdapter):
    name = "digits"
    default_template = "a handwritten digit {name}"

    def check(self) -> None:
        from importlib.util import find_spec

        if find_spec("sklearn") is None:
            raise DatasetError(
                "dataset 'digits': scikit-learn, which ships these images, is not installed (it is the project's "
                "`demo` extra, left out of a compute node's install). Fix: pip install 'gendistill[demo]' (offline: "
                "a wheelhouse made with EXTRAS=demo)."
            )

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": n}) for i, n in enumerate(NAMES)]

    @property
    def mean(self):
        return tuple(self.cfg.get("mean") or (0.1, 0.1, 0.1))

    @property
    def std(self):
        return tuple(self.cfg.get("std") or (0.25, 0.25, 0.25))

    def load_split(self, split: str):
        from sklearn.datasets import load_digits  # deferred: heavy; the plan reads the class names only
        from sklearn.model_selection import train_test_split

        d = load_digits()
        idx_train, idx_test = train_test_split(
            np.arange(len(d.target)), test_size=0.3, random_state=int(self.cfg.get("split_seed", 0)), stratify=d.target
        )
        idx = idx_train if split == "train" else idx_test
        size = self.image_size
        imgs = np.empty((len(idx), size, size, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            small = Image.fromarray((d.images[i] * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
            imgs[k] = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR).convert("RGB"))
        return imgs, d.target[idx].astype(np.int64)
