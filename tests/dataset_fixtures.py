"""Tiny datasets written in the exact on-disk formats of the real ones, for adapter and workflow tests.

Every image is a flat colour (plus light noise) that encodes its label: PALETTE[label]. `decode_labels`
recovers the label from the pixels, so a test can check that an adapter pairs each image with its true label.
Class orders are deliberately neither alphabetical nor the real datasets' order, so an adapter that sorts
names, or hard-codes a class list (as the paper's reference code does), gets the labels wrong.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Well-separated colours (survive JPEG and resizing); class i is PALETTE[i].
PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (120, 120, 0),
        (250, 190, 212),
    ],
    dtype=np.uint8,
)

# CIFAR-10's real order (airplane, automobile, ...) is alphabetical; this permutation is neither.
CIFAR10_NAMES = ["truck", "cat", "airplane", "ship", "frog", "automobile", "horse", "bird", "dog", "deer"]
# A few CIFAR-100 fine labels in a shuffled order (the real meta is alphabetical: apple, aquarium_fish, baby...).
CIFAR100_NAMES = ["maple_tree", "apple", "sweet_pepper", "aquarium_fish", "lawn_mower", "baby"]
# Tiny-ImageNet: wnids.txt order is not sorted (as in the real file); words.txt lists more synsets than used.
TINY_WNIDS = ["n04067472", "n01443537", "n02124075", "n07873807"]
TINY_WORDS = {
    "n00001740": "entity",
    "n01443537": "goldfish, Carassius auratus",
    "n02124075": "Egyptian cat",
    "n03126707": "crane",
    "n04067472": "reel",
    "n07873807": "pizza, pizza pie",
}
# Image folder: names with spaces, unicode and underscores; two sanitise to the same slug (Creme_brulee).
FOLDER_NAMES = ["zebra", "golden_retriever", "Crème brûlée", "Creme brulee"]


@dataclass
class Fixture:
    root: Path  # what dataset.root should be
    names: list[str]  # class names in label order
    counts: dict[str, int] = field(default_factory=dict)  # split -> number of images


def colour_images(labels, size: int, seed: int) -> np.ndarray:
    """uint8 [N, size, size, 3]: PALETTE[label] with +-8 noise (so images are not all identical)."""
    rng = np.random.default_rng(seed)
    base = PALETTE[np.asarray(labels)].astype(np.int16)[:, None, None, :]
    noise = rng.integers(-8, 9, size=(len(labels), size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def decode_labels(images: np.ndarray) -> np.ndarray:
    """Label of each image [N, H, W, 3] = index of the palette colour nearest its mean colour."""
    mean = images.reshape(len(images), -1, 3).mean(axis=1)
    d = ((mean[:, None, :] - PALETTE[None].astype(float)) ** 2).sum(-1)
    return d.argmin(axis=1)


def _shuffled_labels(n_classes: int, per_class: int, rng) -> list[int]:
    labels = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(labels)  # interleaved classes, as in the real batches
    return labels.tolist()


# --- CIFAR (official "python version": Python 2 pickles, read back with bytes keys) -----------------------
def _dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # protocol of the official (Python 2 cPickle) files


def _cifar_batch(labels, label_key: bytes, batch_label: str, seed: int, extra: dict | None = None) -> dict:
    imgs = colour_images(labels, 32, seed)
    return {
        b"batch_label": batch_label.encode(),
        label_key: list(labels),
        # channel-major rows of 3072: R plane, then G, then B (each 32x32 row-major)
        b"data": imgs.transpose(0, 3, 1, 2).reshape(len(labels), 3072),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(len(labels))],
        **(extra or {}),
    }


def make_cifar10(root: Path, per_batch: int = 1, test_per_class: int = 2) -> Fixture:
    """<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; 10 classes."""
    d = Path(root) / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(10)
    _dump(
        {b"num_cases_per_batch": 10 * per_batch, b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072},
        d / "batches.meta",
    )
    for b in range(1, 6):
        _dump(
            _cifar_batch(_shuffled_labels(10, per_batch, rng), b"labels", f"training batch {b} of 5", b),
            d / f"data_batch_{b}",
        )
    _dump(
        _cifar_batch(_shuffled_labels(10, test_per_class, rng), b"labels", "testing batch 1 of 1", 0), d / "test_batch"
    )
    return Fixture(Path(root), list(CIFAR10_NAMES), {"train": 50 * per_batch, "test": 10 * test_per_class})


def make_cifar100(root: Path, train_per_class: int = 4, test_per_class: int = 2) -> Fixture:
    """<root>/cifar-100-python/{train, test, meta} with fine and coarse labels; 6 classes in shuffled order."""
    d = Path(root) / "cifar-100-python"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(100)
    n = len(CIFAR100_NAMES)
    _dump(
        {
            b"fine_label_names": [x.encode() for x in CIFAR100_NAMES],
            b"coarse_label_names": [b"trees", b"fruit_and_vegetables", b"fish", b"people", b"vehicles_2"],
        },
        d / "meta",
    )
    for split, per, seed in (("train", train_per_class, 1), ("test", test_per_class, 2)):
        labels = _shuffled_labels(n, per, rng)
        coarse = {b"coarse_labels": [min(lab, 4) for lab in labels]}
        _dump(_cifar_batch(labels, b"fine_labels", split, seed, coarse), d / split)
    return Fixture(Path(root), list(CIFAR100_NAMES), {"train": n * train_per_class, "test": n * test_per_class})


# --- Tiny-ImageNet-200 -------------------------------------------------------------------------------
def _save(img: np.ndarray, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **kw)


def make_tinyimagenet(root: Path, train_per_class: int = 3, val_per_class: int = 2) -> Fixture:
    """<root>/tiny-imagenet-200/ with wnids.txt, words.txt, train/<wnid>/{images/*.JPEG, <wnid>_boxes.txt},
    val/{val_annotations.txt, images/*.JPEG} and an unlabelled test/images/ (64x64 JPEGs)."""
    d = Path(root) / "tiny-imagenet-200"
    d.mkdir(parents=True, exist_ok=True)
    (d / "wnids.txt").write_text("".join(w + "\n" for w in TINY_WNIDS))
    (d / "words.txt").write_text("".join(f"{w}\t{TINY_WORDS[w]}\n" for w in sorted(TINY_WORDS)))
    for i, w in enumerate(TINY_WNIDS):
        imgs = colour_images([i] * train_per_class, 64, 100 + i)
        boxes = []
        for k, img in enumerate(imgs):
            _save(img, d / "train" / w / "images" / f"{w}_{k}.JPEG", format="JPEG", quality=95)
            boxes.append(f"{w}_{k}.JPEG\t0\t0\t63\t63\n")
        (d / "train" / w / f"{w}_boxes.txt").write_text("".join(boxes))
    rng = np.random.default_rng(200)
    val_labels = _shuffled_labels(len(TINY_WNIDS), val_per_class, rng)
    lines = []
    for k, (lab, img) in enumerate(zip(val_labels, colour_images(val_labels, 64, 300))):
        _save(img, d / "val" / "images" / f"val_{k}.JPEG", format="JPEG", quality=95)
        lines.append(f"val_{k}.JPEG\t{TINY_WNIDS[lab]}\t1\t2\t60\t61\n")
    (d / "val" / "val_annotations.txt").write_text("".join(lines))
    for k, img in enumerate(colour_images([0, 1], 64, 400)):
        _save(img, d / "test" / "images" / f"test_{k}.JPEG", format="JPEG", quality=95)
    names = [TINY_WORDS[w].split(",")[0] for w in TINY_WNIDS]
    return Fixture(
        Path(root), names, {"train": len(TINY_WNIDS) * train_per_class, "test": len(TINY_WNIDS) * val_per_class}
    )


# --- Image folder ----------------------------------------------------------------------------------
def make_imagefolder(
    root: Path,
    names: list[str] | None = None,
    classes_txt: bool = True,
    train_per_class: int = 3,
    test_per_class: int = 2,
    size: int = 40,
) -> Fixture:
    """<root>/{train,test}/<class>/*.png (+ classes.txt in the given, non-sorted order when classes_txt).
    Images are `size` px (not 32) so the adapter's resize is exercised."""
    names = list(names or FOLDER_NAMES)
    root = Path(root)
    order = names if classes_txt else sorted(names)  # the label order the adapter must find
    for i, n in enumerate(order):
        for split, per in (("train", train_per_class), ("test", test_per_class)):
            for k, img in enumerate(colour_images([i] * per, size, 1000 * i + (split == "test"))):
                _save(img, root / split / n / f"{k:03d}.png")
    (root / "train" / ".ipynb_checkpoints").mkdir(exist_ok=True)  # hidden directories are not classes
    if classes_txt:
        (root / "classes.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    return Fixture(root, order, {"train": len(names) * train_per_class, "test": len(names) * test_per_class})


# --- ImageNet-1k (ILSVRC2012) ---------------------------------------------------------------------------
# 27 colours 100 apart on every axis: enough for a 20-class fixture whose labels survive JPEG.
PALETTE27 = np.array(
    [(r, g, b) for r in (30, 130, 230) for g in (30, 130, 230) for b in (30, 130, 230)], dtype=np.uint8
)
# Wnids whose sorted order (the label order) differs from the order of their names, with two 'crane's
# (as the real ImageNet has: a bird and a machine).
IMAGENET_WORDS = {
    "n01530575": "brambling, Fringilla montifringilla",
    "n01440764": "tench, Tinca tinca",
    "n02012849": "crane",
    "n03126707": "crane",
    "n01443537": "goldfish, Carassius auratus",
    "n02129165": "lion, king of beasts, Panthera leo",
    "n04254680": "soccer ball",
    "n07747607": "orange",
    "n01775062": "wolf spider, hunting spider",
    "n02085620": "Chihuahua",
    "n03000134": "chainlink fence",
    "n03888257": "parachute, chute",
    "n04487081": "trolleybus, trolley coach",
    "n02099601": "golden retriever",
    "n01496331": "electric ray, crampfish, numbfish, torpedo",
    "n03417042": "garbage truck, dustcart",
    "n03394916": "French horn, horn",
    "n02102040": "English springer",
    "n03028079": "church, church building",
    "n07714571": "head cabbage",
}


def imagenet_images(labels, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = PALETTE27[np.asarray(labels)].astype(np.int16)[:, None, None, :]
    noise = rng.integers(-8, 9, size=(len(labels), size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def decode_imagenet_labels(images: np.ndarray) -> np.ndarray:
    mean = images.reshape(len(images), -1, 3).mean(axis=1)
    return ((mean[:, None, :] - PALETTE27[None].astype(float)) ** 2).sum(-1).argmin(axis=1)


def make_imagenet(
    root: Path,
    n_classes: int = 6,
    layout: str = "folders",
    names: str = "mapping",
    train_per_class: int = 3,
    val_per_class: int = 2,
    size: int = 40,
) -> Fixture:
    """ILSVRC2012 in one of its layouts. layout: 'folders' (train/<wnid>/, val/<wnid>/) or 'kaggle'
    (<root>/ILSVRC/Data/CLS-LOC/{train/<wnid>/, flat val/}, <root>/LOC_val_solution.csv). names: 'mapping'
    (LOC_synset_mapping.txt), 'devkit' (ILSVRC2012_devkit_t12/data/meta.mat) or 'metabin' (torchvision)."""
    root = Path(root)
    wnids = list(IMAGENET_WORDS)[:n_classes]
    order = sorted(wnids)  # the label order
    data = root / "ILSVRC" / "Data" / "CLS-LOC" if layout == "kaggle" else root
    for w in wnids:  # created in dictionary (not sorted) order
        lab = order.index(w)
        for k, img in enumerate(imagenet_images([lab] * train_per_class, size, 10 + lab)):
            _save(img, data / "train" / w / f"{w}_{k}.JPEG", format="JPEG", quality=95)
    rng = np.random.default_rng(7)
    val_labels = _shuffled_labels(n_classes, val_per_class, rng)
    rows = []
    for k, (lab, img) in enumerate(zip(val_labels, imagenet_images(val_labels, size, 99))):
        name = f"ILSVRC2012_val_{k + 1:08d}"
        if layout == "kaggle":
            _save(img, data / "val" / f"{name}.JPEG", format="JPEG", quality=95)
            rows.append(f"{name},{order[lab]} 1 2 30 31 {order[lab]} 3 4 20 21\n")
        else:
            _save(img, data / "val" / order[lab] / f"{name}.JPEG", format="JPEG", quality=95)
    if layout == "kaggle":
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(reversed(rows)))
    if names == "mapping":
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {IMAGENET_WORDS[w]}\n" for w in order))
    elif names == "devkit":
        from scipy.io import savemat

        dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
        synsets = np.array(
            [(i + 1, w, IMAGENET_WORDS[w], 0) for i, w in enumerate(order)]
            + [(len(order) + 1, "n00001740", "entity", 3)],
            dtype=dt,
        )  # an inner node
        (root / "ILSVRC2012_devkit_t12" / "data").mkdir(parents=True)
        savemat(root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat", {"synsets": synsets})
    elif names == "metabin":
        import torch

        torch.save(({w: tuple(x.strip() for x in IMAGENET_WORDS[w].split(",")) for w in order}, []), root / "meta.bin")
    firsts = [IMAGENET_WORDS[w].split(",")[0] for w in order]
    label_names = [f if firsts.count(f) == 1 else f"{f} ({w})" for f, w in zip(firsts, order)]
    return Fixture(root, label_names, {"train": n_classes * train_per_class, "test": n_classes * val_per_class})
