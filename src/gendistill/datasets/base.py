"""What every dataset adapter provides, and the error raised when the data is not where config says."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatasetError(RuntimeError):
    """The dataset is missing or malformed; the message names the expected path, layout and fix."""


@dataclass
class ClassInfo:
    """One class in the dataset's own label order. `fields` feed the prompt template ({name}, {synonyms}...)."""

    index: int
    name: str
    fields: dict = field(default_factory=dict)


def readable(name: str) -> str:
    """The {name} prompt field: underscores as spaces ('maple_tree' -> 'maple tree'); the label is unchanged."""
    return " ".join(name.replace("_", " ").split())


class DatasetAdapter:
    """Base class. Subclasses read one real on-disk format; `classes()` is always in the dataset's label order."""

    name = "base"
    default_template = "{name}"
    has_real_data = True
    default_image_size = 32
    default_mean = (0.5, 0.5, 0.5)
    default_std = (0.5, 0.5, 0.5)
    # True: the adapter lists its image files (`files`) and the evaluation streams them from disk instead of
    # loading a split whole (ImageNet); False: `load_split` only.
    streams = False

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.root = Path(cfg["root"]).expanduser() if cfg.get("root") else None

    # --- layout -------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise DatasetError (before any expensive work) when files are missing or malformed."""

    def classes(self) -> list[ClassInfo]:
        raise NotImplementedError

    # --- data ---------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return int(self.cfg.get("image_size") or self.default_image_size)

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.cfg.get("mean") or self.default_mean)

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.cfg.get("std") or self.default_std)

    def load_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (images uint8 [N, H, W, 3], labels int64 [N]) for 'train' or 'test'."""
        raise NotImplementedError

    def files(self, split: str, labels: list[int] | None = None) -> tuple[list[Path], np.ndarray]:
        """(paths, labels) of the image files of 'train' or 'test', restricted to `labels` when given; nothing is
        decoded. Only adapters with `streams = True` list their files."""
        raise NotImplementedError(f"dataset '{self.name}' does not list its files (streams = False)")

    # --- one class's training images (generation from real data: gendistill.prototypes) ------------------
    def class_train_files(self, label: int) -> list[Path] | None:
        """The image files of class `label`'s training split, for adapters that read files (None: the adapter
        reads arrays, `load_split`)."""
        return None

    def class_train_images(self, label: int, size: int | None = None) -> np.ndarray:
        """uint8 [n, size, size, 3]: class `label`'s training images (files: only that class's are decoded)."""
        from .images import read_images

        size = size or self.image_size
        files = self.class_train_files(label)
        if files is not None:
            return read_images(files, size)
        x, y = self.load_split("train")
        x = x[y == label]
        if x.shape[1] != size:
            from PIL import Image

            x = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in x])
        return x

    def class_fingerprints(self, labels: list[int]) -> dict[int, tuple[int, str]]:
        """label -> (training images, fingerprint), cheap enough for plan time: for file-based datasets a hash of
        the class's file paths, sizes and modification times (no image decoded), for array datasets a hash of the
        class's arrays (one read of the split). A class's fingerprint changes when its training images do."""
        import hashlib

        out = {}
        files = {c: self.class_train_files(c) for c in labels}
        if all(f is not None for f in files.values()):
            for c, fs in files.items():
                h = hashlib.sha256()
                for f in fs:
                    st = f.stat()
                    h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                out[c] = (len(fs), h.hexdigest()[:16])
            return out
        x, y = self.load_split("train")
        for c in labels:
            xc = np.ascontiguousarray(x[y == c])
            out[c] = (len(xc), hashlib.sha256(xc.tobytes() + str(xc.shape).encode()).hexdigest()[:16])
        return out

    def missing(self, what: str, layout: str, fetch: str | None = None) -> DatasetError:
        msg = (
            f"dataset '{self.name}': {what}\n"
            f"  config: dataset.root = {self.cfg.get('root')!r}\n"
            f"  expected layout:\n{layout}"
        )
        if fetch:
            msg += f"\n  to get it: {fetch}"
        return DatasetError(msg)

    def require_training_images(self, wnids: list[str], files_of, where: str, layout: str, fetch: str) -> None:
        """Every class has training images (`files_of(wnid)` lists them): listing directories decodes nothing, and
        catches a half-copied dataset before any GPU work."""
        empty = [w for w in wnids if not files_of(w)]
        if empty:
            raise self.missing(
                f"no training images in {where} for {empty[:5]}"
                + (f" (and {len(empty) - 5} more)" if len(empty) > 5 else ""),
                layout,
                fetch,
            )

    def read_lines(self, path: Path, layout: str) -> list[str]:
        """Non-blank, stripped lines of a UTF-8 text file (a BOM from Windows editors is dropped)."""
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise self.missing(f"missing {path}", layout) from None
        except (OSError, UnicodeDecodeError) as e:
            raise self.missing(f"cannot read {path} as UTF-8 text: {e}", layout) from None
        return [line.strip() for line in text.splitlines() if line.strip()]


def note(message: str) -> None:
    """A one-line notice on stderr (seen in the Snakemake output when the plan is built)."""
    print(f"gendistill: {message}", file=sys.stderr, flush=True)
