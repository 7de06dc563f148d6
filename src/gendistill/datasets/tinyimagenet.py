"""Tiny-ImageNet-200: class order from wnids.txt, prompt words from words.txt, test split = the labelled val.

The official test/ folder has no labels, so the labelled val/ split serves as the test set (as is usual).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter
from .images import IMAGE_SUFFIXES, read_images

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
FETCH = f"on a machine with internet download {URL}, copy it here and unzip it into dataset.root"
LAYOUT = """    <root>/tiny-imagenet-200/wnids.txt            (one WordNet id per line: the label order)
    <root>/tiny-imagenet-200/words.txt            (wnid<TAB>comma-separated synonyms; may list other wnids too)
    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG
    <root>/tiny-imagenet-200/val/val_annotations.txt   (file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1 per line)
    <root>/tiny-imagenet-200/val/images/*.JPEG
    (<root> may also be the tiny-imagenet-200 folder itself; test/ is unlabelled and not used)"""


class TinyImageNet(DatasetAdapter):
    name = "tinyimagenet"
    default_image_size = 64
    default_mean = (0.485, 0.456, 0.406)
    default_std = (0.229, 0.224, 0.225)

    @property
    def dir(self) -> Path:
        if self.root is not None and (self.root / "wnids.txt").exists():
            return self.root
        return (self.root or Path(".")) / "tiny-imagenet-200"

    def check(self) -> None:
        if self.cfg.get("download"):
            raise self.missing(
                "dataset.download: true is not supported for Tiny-ImageNet (torchvision has no "
                "downloader for it); set it to false and place the files by hand",
                LAYOUT,
                FETCH,
            )
        d = self.dir
        absent = [p for p in ("wnids.txt", "words.txt") if not (d / p).is_file()]
        if absent:
            raise self.missing(f"missing {', '.join(absent)} under {d}", LAYOUT, FETCH)
        wnids = self._wnids()
        if not wnids:
            raise self.missing(f"{d / 'wnids.txt'} lists no classes", LAYOUT, FETCH)
        dup = sorted({w for w in wnids if wnids.count(w) > 1})
        if dup:
            raise self.missing(f"wnids.txt lists {dup[:5]} more than once", LAYOUT, FETCH)
        words = self._words()
        unknown = [w for w in wnids if not words.get(w)]
        if unknown:
            raise self.missing(f"words.txt has no words for {unknown[:5]} (listed in wnids.txt)", LAYOUT, FETCH)
        self.require_training_images(wnids, self._train_files, "train/<wnid>/images/", LAYOUT, FETCH)
        self._val()

    def _wnids(self) -> list[str]:
        return self.read_lines(self.dir / "wnids.txt", LAYOUT)

    def _words(self) -> dict[str, list[str]]:
        out = {}
        for line in self.read_lines(self.dir / "words.txt", LAYOUT):
            wnid, sep, words = line.partition("\t")
            if sep:
                out[wnid.strip()] = [w.strip() for w in words.split(",") if w.strip()]
        return out

    def _train_files(self, wnid: str) -> list[Path]:
        d = self.dir / "train" / wnid / "images"
        if not d.is_dir():
            return []
        return sorted(d / f for f in os.listdir(d) if Path(f).suffix.lower() in IMAGE_SUFFIXES)

    def class_train_files(self, label: int) -> list[Path]:
        return self._train_files(self._wnids()[label])

    def _val(self) -> tuple[list[Path], list[int]]:
        """(paths, labels) of the labelled val split, checked against wnids.txt and val/images/."""
        ann = self.dir / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise self.missing(f"missing {ann}", LAYOUT, FETCH)
        img_dir = self.dir / "val" / "images"
        present = set(os.listdir(img_dir)) if img_dir.is_dir() else set()
        index = {w: i for i, w in enumerate(self._wnids())}
        paths, labels = [], []
        for n, line in enumerate(self.read_lines(ann, LAYOUT), 1):
            parts = line.split("\t")
            if len(parts) < 2:
                raise self.missing(f"{ann} line {n} is not tab-separated 'file<TAB>wnid...': {line!r}", LAYOUT, FETCH)
            file, wnid = parts[0].strip(), parts[1].strip()
            if wnid not in index:
                raise self.missing(f"{ann} line {n} names {wnid!r}, which is not in wnids.txt", LAYOUT, FETCH)
            if file not in present:
                raise self.missing(f"{ann} line {n} names {file}, which is not in {img_dir}", LAYOUT, FETCH)
            paths.append(img_dir / file)
            labels.append(index[wnid])
        if not paths:
            raise self.missing(f"{ann} lists no images", LAYOUT, FETCH)
        return paths, labels

    def classes(self) -> list[ClassInfo]:
        words = self._words()
        wnids = self._wnids()
        firsts = [words[w][0] for w in wnids]
        out = []
        for i, wnid in enumerate(wnids):
            syn = words[wnid]
            # Class names must be unique (they key overrides and dataset.classes): two synsets sharing a first
            # word (ImageNet has two 'crane's) get their wnid appended; the prompt fields stay as WordNet has them.
            label = syn[0] if firsts.count(syn[0]) == 1 else f"{syn[0]} ({wnid})"
            out.append(ClassInfo(i, label, {"name": syn[0], "synonyms": ", ".join(syn), "wnid": wnid}))
        return out

    def load_split(self, split: str):
        if split == "train":
            paths, labels = [], []
            for i, w in enumerate(self._wnids()):
                files = self._train_files(w)
                paths += files
                labels += [i] * len(files)
        elif split == "test":
            paths, labels = self._val()
        else:
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if not paths:
            raise self.missing(f"no {split} images found under {self.dir}", LAYOUT, FETCH)
        return read_images(paths, self.image_size), np.asarray(labels, dtype=np.int64)
