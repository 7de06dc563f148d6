"""ImageNet-1k (ILSVRC2012), in the layouts people have it in. Label order = sorted wnids (torchvision's order).

Layouts (dataset.root points at the folder holding train/ and val/, or at a Kaggle download's top folder):
  * class folders for both splits: train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (the usual "ImageFolder" prep,
    and torchvision's ImageNet after its first parse);
  * the Kaggle / ILSVRC CLS-LOC layout: train/<wnid>/*.JPEG, a flat val/*.JPEG and LOC_val_solution.csv
    (ImageId,PredictionString whose first token is the wnid), under ILSVRC/Data/CLS-LOC/ or directly.
Class names (prompts) come from LOC_synset_mapping.txt ("n01440764 tench, Tinca tinca"), or from the devkit's
ILSVRC2012_devkit_t12/data/meta.mat, or torchvision's meta.bin: {name} is the first synonym, {synonyms} all of
them, {wnid} the id. The val split is the test set (the official test set has no public labels).
Training images are listed, never loaded whole: evaluation streams them (`streams`, `files`; evaluation/data.py).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .base import ClassInfo, DatasetAdapter
from .images import IMAGE_SUFFIXES, read_images

FETCH = (
    "ImageNet cannot be downloaded for you: get ILSVRC2012 (image-net.org, after registering, or Kaggle's "
    "'imagenet-object-localization-challenge'), unpack it, and point dataset.root at it"
)
LAYOUT = """    <root>/train/<wnid>/*.JPEG                  (1,000 class folders; label order = sorted wnids)
    and either <root>/val/<wnid>/*.JPEG         (val in class folders)
    or         <root>/val/*.JPEG + <root>/LOC_val_solution.csv   (flat val, Kaggle's labels)
    class names: <root>/LOC_synset_mapping.txt  ("n01440764 tench, Tinca tinca" per line)
             or  <root>/ILSVRC2012_devkit_t12/data/meta.mat, or torchvision's <root>/meta.bin
    (Kaggle's download: <root> may be its top folder, holding ILSVRC/Data/CLS-LOC/ and the LOC_* files)"""


class ImageNet(DatasetAdapter):
    name = "imagenet"
    default_image_size = 224
    default_mean = (0.485, 0.456, 0.406)
    default_std = (0.229, 0.224, 0.225)
    streams = True

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self._cache: dict = {}

    # --- where things are --------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        """The folder holding train/ and val/."""
        root = self.root or Path(".")
        kaggle = root / "ILSVRC" / "Data" / "CLS-LOC"
        return kaggle if not (root / "train").is_dir() and (kaggle / "train").is_dir() else root

    def _find(self, name: str) -> Path | None:
        for d in (self.dir, self.root or Path("."), (self.root or Path(".")).parent):
            if (d / name).is_file():
                return d / name
        return None

    # --- layout ----------------------------------------------------------------------------------------
    def check(self) -> None:
        if self.cfg.get("download"):
            raise self.missing(
                "dataset.download: true is not supported for ImageNet; set it to false and place the files by hand",
                LAYOUT,
                FETCH,
            )
        train = self.dir / "train"
        if not train.is_dir():
            raise self.missing(f"missing {train}/ (one folder per wnid)", LAYOUT, FETCH)
        wnids = self._wnids()
        if not wnids:
            raise self.missing(f"{train} has no wnid folders (n01440764, ...)", LAYOUT, FETCH)
        words = self._words()
        unnamed = [w for w in wnids if w not in words]
        if unnamed:
            raise self.missing(
                f"no class names for {len(unnamed)} wnids of train/ ({', '.join(unnamed[:5])}) in "
                f"{self._words_source()}",
                LAYOUT,
                FETCH,
            )
        self.require_training_images(wnids, lambda w: self._class_files("train", w), "train/<wnid>/", LAYOUT, FETCH)
        self._val()

    def _wnids(self) -> list[str]:
        if "wnids" not in self._cache:
            train = self.dir / "train"
            self._cache["wnids"] = (
                sorted(e.name for e in os.scandir(train) if e.is_dir() and not e.name.startswith("."))
                if train.is_dir()
                else []
            )
        return self._cache["wnids"]

    def _words_source(self) -> str:
        found = [self._find(n) for n in ("LOC_synset_mapping.txt", "meta.bin")]
        found += [
            p
            for p in [
                self.dir / "ILSVRC2012_devkit_t12" / "data" / "meta.mat",
                (self.root or Path(".")) / "ILSVRC2012_devkit_t12" / "data" / "meta.mat",
            ]
            if p.is_file()
        ]
        found = [p for p in found if p]
        return str(found[0]) if found else "(none found)"

    def _words(self) -> dict[str, list[str]]:
        """wnid -> synonyms, from the first class-name source found."""
        if "words" in self._cache:
            return self._cache["words"]
        src = self._words_source()
        if src == "(none found)":
            raise self.missing(
                "no class-name file (LOC_synset_mapping.txt, devkit meta.mat or meta.bin)", LAYOUT, FETCH
            )
        path = Path(src)
        if path.name == "LOC_synset_mapping.txt":
            words = {}
            for n, line in enumerate(self.read_lines(path, LAYOUT), 1):
                wnid, _, names = line.partition(" ")
                if not wnid.startswith("n") or not names.strip():
                    raise self.missing(f"{path} line {n} is not 'wnid name, synonym...': {line!r}", LAYOUT, FETCH)
                words[wnid] = [w.strip() for w in names.split(",") if w.strip()]
        elif path.name == "meta.mat":
            words = _devkit_words(path)
        else:
            import torch  # deferred: heavy, and only torchvision's meta.bin needs it

            wnid_to_classes = torch.load(path, weights_only=False)[0]
            words = {w: list(names) for w, names in wnid_to_classes.items()}
        self._cache["words"] = words
        return words

    def _class_files(self, split: str, wnid: str) -> list[Path]:
        d = self.dir / split / wnid
        if not d.is_dir():
            return []
        return sorted(d / f for f in os.listdir(d) if Path(f).suffix.lower() in IMAGE_SUFFIXES)

    def _val(self) -> tuple[list[Path], list[int]]:
        """(paths, labels) of the val split: class folders, or a flat folder labelled by LOC_val_solution.csv."""
        if "val" in self._cache:
            return self._cache["val"]
        val = self.dir / "val"
        if not val.is_dir():
            raise self.missing(f"missing {val}/", LAYOUT, FETCH)
        index = {w: i for i, w in enumerate(self._wnids())}
        paths, labels = [], []
        folders = [e.name for e in os.scandir(val) if e.is_dir() and not e.name.startswith(".")]
        if folders:
            extra = sorted(set(folders) - set(index))
            if extra:
                raise self.missing(f"val/ has class folders that train/ lacks: {extra[:5]}", LAYOUT, FETCH)
            for w in sorted(folders):
                files = self._class_files("val", w)
                paths += files
                labels += [index[w]] * len(files)
        else:
            solution = self._find("LOC_val_solution.csv")
            if solution is None:
                raise self.missing(
                    f"{val} is flat (no class folders) and no LOC_val_solution.csv labels it", LAYOUT, FETCH
                )
            present = {Path(f).stem: f for f in os.listdir(val) if Path(f).suffix.lower() in IMAGE_SUFFIXES}
            with open(solution, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
            if not rows or not {"ImageId", "PredictionString"} <= set(rows[0]):
                raise self.missing(f"{solution} has no ImageId,PredictionString header", LAYOUT, FETCH)
            for n, row in enumerate(rows, 2):
                image, pred = row["ImageId"].strip(), row["PredictionString"].split()
                if not pred or pred[0] not in index:
                    raise self.missing(f"{solution} line {n}: {pred[:1]} is not a wnid of train/", LAYOUT, FETCH)
                if image not in present:
                    raise self.missing(f"{solution} line {n} names {image}, which is not in {val}", LAYOUT, FETCH)
                paths.append(val / present[image])
                labels.append(index[pred[0]])
            order = np.argsort([p.name for p in paths], kind="stable")
            paths, labels = [paths[i] for i in order], [labels[i] for i in order]
        if not paths:
            raise self.missing(f"no val images under {val}", LAYOUT, FETCH)
        self._cache["val"] = (paths, labels)
        return paths, labels

    # --- classes and images --------------------------------------------------------------------------
    def classes(self) -> list[ClassInfo]:
        words, wnids = self._words(), self._wnids()
        firsts = [words[w][0] for w in wnids]
        out = []
        for i, wnid in enumerate(wnids):
            syn = words[wnid]
            # Names key overrides and dataset.classes, so they must be unique: ImageNet has two 'crane's and
            # two 'maillot's; those get their wnid appended (the prompt fields stay as WordNet has them).
            label = syn[0] if firsts.count(syn[0]) == 1 else f"{syn[0]} ({wnid})"
            out.append(ClassInfo(i, label, {"name": syn[0], "synonyms": ", ".join(syn), "wnid": wnid}))
        return out

    def class_train_files(self, label: int) -> list[Path]:
        return self._class_files("train", self._wnids()[label])

    def files(self, split: str, labels: list[int] | None = None) -> tuple[list[Path], np.ndarray]:
        """(paths, labels) of a split, restricted to `labels` when given; nothing is decoded."""
        keep = None if labels is None else set(labels)
        if split == "train":
            paths, ys = [], []
            for i, w in enumerate(self._wnids()):
                if keep is None or i in keep:
                    files = self._class_files("train", w)
                    paths += files
                    ys += [i] * len(files)
        elif split == "test":
            vp, vl = self._val()
            pairs = [(p, y) for p, y in zip(vp, vl) if keep is None or y in keep]
            paths, ys = [p for p, _ in pairs], [y for _, y in pairs]
        else:
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        return paths, np.asarray(ys, dtype=np.int64)

    def load_split(self, split: str):
        """The whole split in memory: for small subsets only (evaluation streams the real thing)."""
        paths, labels = self.files(split)
        if not paths:
            raise self.missing(f"no {split} images found under {self.dir}", LAYOUT, FETCH)
        return read_images(paths, self.image_size), labels


def _devkit_words(path: Path) -> dict[str, list[str]]:
    """wnid -> synonyms of the 1,000 leaf synsets in the ILSVRC2012 devkit's meta.mat (as torchvision reads it)."""
    from scipy.io import loadmat  # deferred: heavy, and only the devkit's meta.mat needs it

    synsets = loadmat(str(path), squeeze_me=True)["synsets"]
    out = {}
    for s in synsets:
        if int(s["num_children"]) == 0:
            out[str(s["WNID"])] = [w.strip() for w in str(s["words"]).split(",") if w.strip()]
    return out
