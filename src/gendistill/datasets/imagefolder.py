"""A user's own data: <root>/train/<class>/*.png and <root>/test/<class>/*.png, optional class list file.

Also the class-list-only mode (no images at all): generation and packaging run, evaluation is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter, note, readable
from .images import IMAGE_SUFFIXES, read_images

LAYOUT = """    <root>/train/<class name>/*.{png,jpg,...}
    <root>/test/<class name>/*.{png,jpg,...}
    <root>/classes.txt   (optional: one class directory name per line, giving the label order;
                          without it the order is the sorted directory names, as torchvision's ImageFolder)"""


def _images(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(d / f for f in os.listdir(d) if Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith("."))


class ImageFolder(DatasetAdapter):
    name = "imagefolder"

    def _class_file(self) -> Path | None:
        f = self.cfg.get("class_list")
        if f:
            return Path(f).expanduser()
        cand = (self.root or Path(".")) / "classes.txt"
        return cand if cand.is_file() else None

    def _dirs(self, split: str) -> list[str]:
        # Hidden directories (.ipynb_checkpoints, .DS_Store's siblings) are not classes.
        return sorted(p.name for p in (self.root / split).iterdir() if p.is_dir() and not p.name.startswith("."))

    def check(self) -> None:
        if self.root is None:
            raise self.missing("dataset.root is not set", LAYOUT)
        absent = [s for s in ("train", "test") if not (self.root / s).is_dir()]
        if absent:
            raise self.missing(f"no {' or '.join(a + '/' for a in absent)} directory under {self.root}", LAYOUT)
        names = self._names()
        if not names:
            raise self.missing(f"no class directories under {self.root / 'train'}", LAYOUT)
        bad = [n for n in names if n in (".", "..") or "/" in n or "\\" in n]
        if bad:
            raise self.missing(
                f"class list {self._class_file()} names {bad[:5]}, which are not single directory names", LAYOUT
            )
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise self.missing(f"class list {self._class_file()} names {dup[:5]} more than once", LAYOUT)
        for split in ("train", "test"):
            lacking = [n for n in names if not (self.root / split / n).is_dir()]
            if lacking:
                raise self.missing(f"{split}/ lacks class directories {lacking[:5]}", LAYOUT)
        f = self._class_file()
        if f is not None:
            # A directory left out of classes.txt would silently drop its test images from evaluation.
            extra = sorted(set(self._dirs("train")) - set(names))
            if extra:
                raise self.missing(
                    f"train/ has class directories {extra[:5]} that {f} does not list; add them "
                    f"(use dataset.classes to distil only some classes)",
                    LAYOUT,
                )
        empty = [n for n in names if not _images(self.root / "train" / n)]
        if empty:
            raise self.missing(f"train/ class directories without images: {empty[:5]}", LAYOUT)
        if not any(_images(self.root / "test" / n) for n in names):
            raise self.missing("test/ holds no images", LAYOUT)

    def _names(self) -> list[str]:
        f = self._class_file()
        if f is not None:
            if not f.is_file():
                raise self.missing(f"class list file {f} does not exist", LAYOUT)
            return self.read_lines(f, LAYOUT)
        return self._dirs("train")

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": readable(n)}) for i, n in enumerate(self._names())]

    def class_train_files(self, label: int) -> list[Path]:
        return _images(self.root / "train" / self._names()[label])

    def load_split(self, split: str):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        paths, labels = [], []
        for i, n in enumerate(self._names()):
            files = _images(self.root / split / n)
            paths += files
            labels += [i] * len(files)
        return read_images(paths, self.image_size), np.asarray(labels, dtype=np.int64)


class ClassList(DatasetAdapter):
    """No real data: class names only (from config or a file). Generation and packaging run; evaluation is skipped."""

    name = "classlist"
    has_real_data = False
    LAYOUT = (
        "    dataset.class_names: [cat, dog, ...]  or  "
        "dataset.class_list: path/to/classes.txt (UTF-8, one name per line, in label order)"
    )

    def check(self) -> None:
        names = self._names()
        if not names:
            raise self.missing("no classes given", self.LAYOUT)
        if any(not n.strip() for n in names):
            raise self.missing("a class name is empty", self.LAYOUT)
        # the classes dataset.classes selects (the plan refuses an entry that is not a class, or one given twice)
        selected = self.cfg.get("classes")
        count = f"{len(names)}" if selected is None else f"the {len(selected)} selected of the {len(names)}"
        note(
            f"dataset 'classlist' has no real images: evaluation is skipped (generation and packaging "
            f"still run for {count} classes)"
        )

    def _names(self) -> list[str]:
        if self.cfg.get("class_names"):
            return [str(n).strip() for n in self.cfg["class_names"]]
        f = self.cfg.get("class_list")
        if f:
            p = Path(f).expanduser()
            if not p.is_file():
                raise self.missing(f"class list file {p} does not exist", self.LAYOUT)
            return self.read_lines(p, self.LAYOUT)
        return []

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(i, n, {"name": readable(n)}) for i, n in enumerate(self._names())]

    def load_split(self, split: str):
        raise RuntimeError("dataset 'classlist' has no real images: evaluation is skipped for it")
