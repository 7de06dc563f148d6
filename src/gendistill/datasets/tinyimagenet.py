"""Tiny-ImageNet-200: class order from wnids.txt, prompt words from words.txt, test split = the labelled val."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter
from .images import read_images

LAYOUT = """    <root>/tiny-imagenet-200/wnids.txt            (one WordNet id per line: the label order)
    <root>/tiny-imagenet-200/words.txt            (wnid<TAB>comma-separated synonyms)
    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG
    <root>/tiny-imagenet-200/val/val_annotations.txt and val/images/*.JPEG"""


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
            raise self.missing("Tiny-ImageNet has no torchvision downloader", LAYOUT,
                               "download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it into dataset.root")
        d = self.dir
        absent = [p for p in ("wnids.txt", "words.txt") if not (d / p).is_file()]
        if absent:
            raise self.missing(f"missing {', '.join(absent)} under {d}", LAYOUT,
                               "download http://cs231n.stanford.edu/tiny-imagenet-200.zip on a machine with "
                               "internet and unzip it into dataset.root")
        wnids = self._wnids()
        words = self._words()
        unknown = [w for w in wnids if w not in words]
        if unknown:
            raise self.missing(f"words.txt has no entry for {unknown[:5]} (listed in wnids.txt)", LAYOUT)
        if len(set(wnids)) != len(wnids):
            raise self.missing("wnids.txt lists a class twice", LAYOUT)

    def _wnids(self) -> list[str]:
        return [w.strip() for w in (self.dir / "wnids.txt").read_text().splitlines() if w.strip()]

    def _words(self) -> dict[str, list[str]]:
        out = {}
        for line in (self.dir / "words.txt").read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                wnid, words = line.split("\t", 1)
                out[wnid.strip()] = [w.strip() for w in words.split(",") if w.strip()]
        return out

    def classes(self) -> list[ClassInfo]:
        words = self._words()
        out = []
        for i, wnid in enumerate(self._wnids()):
            syn = words[wnid]
            out.append(ClassInfo(i, syn[0], {"name": syn[0], "synonyms": ", ".join(syn), "wnid": wnid}))
        return out

    def load_split(self, split: str):
        wnids = self._wnids()
        index = {w: i for i, w in enumerate(wnids)}
        paths, labels = [], []
        if split == "train":
            for w in wnids:
                files = sorted((self.dir / "train" / w / "images").glob("*"))
                paths += files
                labels += [index[w]] * len(files)
        else:
            ann = self.dir / "val" / "val_annotations.txt"
            if not ann.is_file():
                raise self.missing(f"missing {ann}", LAYOUT)
            for line in ann.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1] in index:
                    paths.append(self.dir / "val" / "images" / parts[0])
                    labels.append(index[parts[1]])
        if not paths:
            raise self.missing(f"no {split} images found under {self.dir}", LAYOUT)
        return read_images(paths, self.image_size), np.asarray(labels, dtype=np.int64)
