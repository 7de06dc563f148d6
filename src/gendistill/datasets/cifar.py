"""CIFAR-10 and CIFAR-100 in the official "python version" pickle layout; class order from its meta file.

Read directly (not through torchvision's dataset classes) because those verify the MD5 of the official files,
which rules out test fixtures in the same layout; `download: true` still uses torchvision's downloader.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class _Cifar(DatasetAdapter):
    folder = ""
    meta_file = ""
    names_key = b""
    labels_key = b""
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    url = ""
    tv_class = ""

    @property
    def dir(self) -> Path:
        # Accept the parent (torchvision's `root`) or the folder itself.
        if self.root is not None and (self.root / self.meta_file).exists():
            return self.root
        return (self.root or Path(".")) / self.folder

    def _layout(self) -> str:
        files = ", ".join(self.train_files + self.test_files + (self.meta_file,))
        return f"    <root>/{self.folder}/{{{files}}}  (the official 'CIFAR python version' archive, unpacked)"

    def check(self) -> None:
        if self.cfg.get("download"):
            self._download()
        d = self.dir
        needed = [self.meta_file, *self.train_files, *self.test_files]
        absent = [f for f in needed if not (d / f).is_file()]
        if absent:
            raise self.missing(f"missing {', '.join(absent)} under {d}", self._layout(),
                               f"on a machine with internet, download {self.url} and unpack it into "
                               f"dataset.root, or set dataset.download: true")
        try:
            meta = _unpickle(d / self.meta_file)
            names = meta[self.names_key]
        except Exception as e:  # noqa: BLE001 - any unreadable meta is the same user error
            raise self.missing(f"cannot read class names ({self.names_key.decode()}) from {d / self.meta_file}: {e}",
                               self._layout()) from e
        if not names:
            raise self.missing(f"{d / self.meta_file} lists no classes", self._layout())

    def _download(self) -> None:
        import torchvision

        getattr(torchvision.datasets, self.tv_class)(str(self.root or "."), download=True)

    def classes(self) -> list[ClassInfo]:
        names = [_text(n) for n in _unpickle(self.dir / self.meta_file)[self.names_key]]
        return [ClassInfo(i, n, {"name": n.replace("_", " ")}) for i, n in enumerate(names)]

    def load_split(self, split: str):
        files = self.train_files if split == "train" else self.test_files
        xs, ys = [], []
        for f in files:
            d = _unpickle(self.dir / f)
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(d[self.labels_key], dtype=np.int64))
        return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


class Cifar10(_Cifar):
    name = "cifar10"
    folder = "cifar-10-batches-py"
    meta_file = "batches.meta"
    names_key = b"label_names"
    labels_key = b"labels"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    tv_class = "CIFAR10"
    default_mean = (0.4914, 0.4822, 0.4465)
    default_std = (0.2470, 0.2435, 0.2616)


class Cifar100(_Cifar):
    name = "cifar100"
    folder = "cifar-100-python"
    meta_file = "meta"
    names_key = b"fine_label_names"
    labels_key = b"fine_labels"
    train_files = ("train",)
    test_files = ("test",)
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    tv_class = "CIFAR100"
    default_mean = (0.5071, 0.4866, 0.4409)
    default_std = (0.2673, 0.2564, 0.2762)
