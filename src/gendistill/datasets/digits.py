"""scikit-learn's bundled handwritten digits (1,797 8x8 images), upsampled to RGB, for the offline demo.

It ships inside scikit-learn, so the demo's evaluation numbers are real without any download. The split is a
seeded stratified train/test split, the one scikit-learn's `train_test_split(..., test_size=0.3, stratify=y)`
draws (tests/test_datasets.py checks they agree). The images are read from scikit-learn's data file and split here,
without importing scikit-learn: its import (and scipy's) is ~2 s of CPU in every job that reads the digits, more
than a demo evaluation's training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .base import ClassInfo, DatasetAdapter, DatasetError

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class Digits(DatasetAdapter):
    name = "digits"
    default_template = "a handwritten digit {name}"

    def check(self) -> None:
        sklearn_dir()

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": n}) for i, n in enumerate(NAMES)]

    @property
    def mean(self):
        return tuple(self.cfg.get("mean") or (0.1, 0.1, 0.1))

    @property
    def std(self):
        return tuple(self.cfg.get("std") or (0.25, 0.25, 0.25))

    def load_split(self, split: str):
        images, target = read_digits()
        idx_train, idx_test = stratified_split(target, TEST_FRACTION, int(self.cfg.get("split_seed", 0)))
        idx = idx_train if split == "train" else idx_test
        size = self.image_size
        imgs = np.empty((len(idx), size, size, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            small = Image.fromarray((images[i] * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
            imgs[k] = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR).convert("RGB"))
        return imgs, target[idx].astype(np.int64)


TEST_FRACTION = 0.3


def sklearn_dir() -> Path:
    """The installed scikit-learn package's directory, found without importing it; its absence is refused with the
    fix."""
    from importlib.util import find_spec

    spec = find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "dataset 'digits': scikit-learn, which ships these images, is not installed (it is the project's "
            "`demo` extra, left out of a compute node's install). Fix: pip install 'gendistill[demo]' (offline: "
            "a wheelhouse made with EXTRAS=demo)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images 1797 x 8 x 8 in 0..16 as float64, targets) from scikit-learn's `datasets/data/digits.csv.gz` (one
    row per image: 64 pixel values, then the class), read without importing scikit-learn."""
    data = np.loadtxt(sklearn_dir() / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: a seeded split that keeps each class's share in both parts. The draw is scikit-learn's
    StratifiedShuffleSplit (one split), so the digits' split is the one the demo always had: the test part holds
    ceil(fraction x n) items; each class gets the floor of its share of each part, and the items left over go to the
    classes with the largest remainders (ties drawn at random); each class's items are then permuted and dealt to
    train and test, and each part is shuffled. All draws come from one numpy RandomState(seed), in that order."""
    rng = np.random.RandomState(seed)
    n_test = int(np.ceil(test_fraction * len(y)))
    n_train = len(y) - n_test
    _, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(y_idx, kind="stable"), np.cumsum(counts)[:-1])
    n_train_per = _shares(counts, n_train, rng)
    n_test_per = _shares(counts - n_train_per, n_test, rng)
    train, test = [], []
    for c, items in enumerate(members):
        order = items.take(rng.permutation(counts[c]), mode="clip")
        train.extend(order[: n_train_per[c]])
        test.extend(order[n_train_per[c] : n_train_per[c] + n_test_per[c]])
    return rng.permutation(train), rng.permutation(test)


def _shares(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `draws` items each class gets: its proportional share rounded down, then one more for the classes
    with the largest remainders, ties broken by `rng`."""
    exact = counts / counts.sum() * draws
    shares = np.floor(exact)
    missing = int(draws - shares.sum())
    remainder = exact - shares
    for value in np.sort(np.unique(remainder))[::-1]:
        if missing <= 0:
            break
        (tied,) = np.where(remainder == value)
        take = min(len(tied), missing)
        shares[rng.choice(tied, size=take, replace=False)] += 1
        missing -= take
    return shares.astype(int)
