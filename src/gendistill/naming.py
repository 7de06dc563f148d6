"""Class names -> safe, unique file and directory names; the label and the prompt are left untouched."""

from __future__ import annotations

import re
import unicodedata


def slugify(name: str, max_len: int = 48) -> str:
    """ASCII file-name-safe form of a class name ('maple_tree', 'Crème/brûlée' -> 'Creme_brulee')."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")
    return slug[:max_len] or "class"


def class_ids(names: list[str]) -> list[str]:
    """One id per class: zero-padded label index + slug, e.g. '007_bed'.

    The index prefix makes ids unique even when two names sanitise to the same slug, and makes the
    alphabetical order of the ids equal the label order (so torchvision's ImageFolder reads the right labels).
    """
    width = max(3, len(str(max(len(names) - 1, 0))))
    return [f"{i:0{width}d}_{slugify(n)}" for i, n in enumerate(names)]
