"""A user's own data: <root>/train/<class>/*.png and <root>/test/<class>/*.png, optional class list file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter
from .images import IMAGE_SUFFIXES, read_images

LAYOUT = """    <root>/train/<class name>/*.{png,jpg,...}
    <root>/test/<class name>/*.{png,jpg,...}
    <root>/classes.txt   (optional: one class directory name per line, giving the label order;
                          without it the order is the sorted directory names)"""


class ImageFolder(DatasetAdapter):
    name = "imagefolder"

    def _class_file(self) -> Path | None:
        f = self.cfg.get("class_list")
        if f:
            return Path(f).expanduser()
        cand = (self.root or Path(".")) / "classes.txt"
        return cand if cand.is_file() else None

    def check(self) -> None:
        if self.root is None or not (self.root / "train").is_dir() or not (self.root / "test").is_dir():
            raise self.missing(f"no train/ and test/ directories under {self.root}", LAYOUT)
        names = self._names()
        if not names:
            raise self.missing(f"no class directories under {self.root / 'train'}", LAYOUT)
        for split in ("train", "test"):
            absent = [n for n in names if not (self.root / split / n).is_dir()]
            if absent:
                raise self.missing(f"{split}/ lacks class directories {absent[:5]}", LAYOUT)

    def _names(self) -> list[str]:
        f = self._class_file()
        if f is not None:
            if not f.is_file():
                raise self.missing(f"class list file {f} does not exist", LAYOUT)
            return [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        return sorted(p.name for p in (self.root / "train").iterdir() if p.is_dir())

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": n.replace("_", " ")}) for i, n in enumerate(self._names())]

    def load_split(self, split: str):
        paths, labels = [], []
        for i, n in enumerate(self._names()):
            files = sorted(p for p in (self.root / split / n).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += files
            labels += [i] * len(files)
        return read_images(paths, self.image_size), np.asarray(labels, dtype=np.int64)


class ClassList(DatasetAdapter):
    """No real data: class names only (from config or a file). Generation and packaging run; evaluation is skipped."""

    name = "classlist"
    has_real_data = False

    def check(self) -> None:
        if not self._names():
            raise self.missing("no classes given", "    dataset.class_names: [cat, dog, ...]  or  "
                               "dataset.class_list: path/to/classes.txt (one name per line)")

    def _names(self) -> list[str]:
        if self.cfg.get("class_names"):
            return [str(n) for n in self.cfg["class_names"]]
        f = self.cfg.get("class_list")
        if f:
            p = Path(f).expanduser()
            if not p.is_file():
                raise self.missing(f"class list file {p} does not exist",
                                   "    a text file with one class name per line")
            return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        return []

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": n.replace("_", " ")}) for i, n in enumerate(self._names())]

    def load_split(self, split: str):
        raise RuntimeError("dataset 'classlist' has no real images: evaluation is skipped for it")
