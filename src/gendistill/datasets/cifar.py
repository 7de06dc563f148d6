"""CIFAR-10 and CIFAR-100 in the official "python version" pickle layout; class order from its meta file.

Read directly (not through torchvision's dataset classes) because those verify the MD5 of the official files,
which rules out test fixtures in the same layout; `download: true` still uses torchvision's downloader.
The official pickles were written by Python 2, so they are loaded with encoding="bytes" (keys like b"data");
str keys (files re-saved by Python 3) are accepted too.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter, readable


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _get(d: dict, key: bytes):
    """d[key] for a bytes key, or its str twin."""
    if key in d:
        return d[key]
    return d[key.decode()]


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
        return (
            f"    <root>/{self.folder}/{{{files}}}\n"
            f"    (the official 'CIFAR python version' archive unpacked into <root>; <root> may also be the\n"
            f"    {self.folder} folder itself). Each data file is a pickled dict with b'data' (N x 3072 uint8,\n"
            f"    channel-major RGB 32x32) and b'{self.labels_key.decode()}'; {self.meta_file} has "
            f"b'{self.names_key.decode()}' in label order."
        )

    def _fetch(self) -> str:
        return (
            f"set dataset.download: true (needs internet), or on a machine with internet download "
            f"{self.url}, copy it here and unpack it into dataset.root (tar xzf {self.url.rsplit('/', 1)[-1]} "
            f"-C <root>)"
        )

    def _unpickle(self, path: Path) -> dict:
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise self.missing(
                f"cannot unpickle {path}: {type(e).__name__}: {e} (truncated or not the python "
                f"version of the archive?)",
                self._layout(),
                self._fetch(),
            ) from None
        if not isinstance(d, dict):
            raise self.missing(f"{path} holds a {type(d).__name__}, not a dict", self._layout(), self._fetch())
        return d

    def _absent(self) -> list[str]:
        return [f for f in (self.meta_file, *self.train_files, *self.test_files) if not (self.dir / f).is_file()]

    def check(self) -> None:
        if self.cfg.get("download") and self._absent():
            self._download()
        absent = self._absent()
        if absent:
            raise self.missing(f"missing {', '.join(absent)} under {self.dir}", self._layout(), self._fetch())
        names = self._names()
        # Read every data file now (well under a second for CIFAR) so a broken file fails the DAG build,
        # not an evaluation job after sampling.
        for f in self.train_files + self.test_files:
            self._read(f, len(names))

    def _download(self) -> None:
        try:
            import torchvision  # deferred: heavy, and only the opt-in download uses it

            getattr(torchvision.datasets, self.tv_class)(str(self.root or "."), download=True)
        except Exception as e:  # noqa: BLE001 - no network, disk full...: report as a dataset problem
            raise self.missing(f"download failed: {type(e).__name__}: {e}", self._layout(), self._fetch()) from None

    def _names(self) -> list[str]:
        path = self.dir / self.meta_file
        meta = self._unpickle(path)
        try:
            names = [_text(n) for n in _get(meta, self.names_key)]
        except (KeyError, TypeError, UnicodeDecodeError) as e:
            raise self.missing(
                f"cannot read class names (key {self.names_key!r}) from {path}: {type(e).__name__}: {e}",
                self._layout(),
                self._fetch(),
            ) from None
        if not names:
            raise self.missing(f"{path} lists no classes", self._layout(), self._fetch())
        if len(set(names)) != len(names):
            raise self.missing(f"{path} lists a class name twice", self._layout(), self._fetch())
        return names

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": readable(n)}) for i, n in enumerate(self._names())]

    def _read(self, file: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.dir / file
        d = self._unpickle(path)
        try:
            x = np.asarray(_get(d, b"data"))
            y = np.asarray(_get(d, self.labels_key))
        except KeyError as e:
            raise self.missing(
                f"{path} has no key {e} (keys: {sorted(map(repr, d))})", self._layout(), self._fetch()
            ) from None
        if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.dtype != np.uint8:
            raise self.missing(
                f"{path}: data is {x.dtype} {x.shape}, expected uint8 (N, 3072)", self._layout(), self._fetch()
            )
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise self.missing(f"{path}: {len(y)} labels for {len(x)} images", self._layout(), self._fetch())
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise self.missing(
                f"{path}: labels span {y.min()}..{y.max()} but {self.meta_file} names {n_classes} classes",
                self._layout(),
                self._fetch(),
            )
        # Stored channel-major (R plane, G plane, B plane), row-major within each plane.
        return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int64)

    def load_split(self, split: str):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        n = len(self._names())
        parts = [self._read(f, n) for f in (self.train_files if split == "train" else self.test_files)]
        return np.ascontiguousarray(np.concatenate([p[0] for p in parts])), np.concatenate([p[1] for p in parts])


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
