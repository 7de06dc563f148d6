"""Sample grids for the report: per class, one row per generated image, its original then its augmented copies
(read from the class's augmented records.json: image index, copy index, file)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from ..atomic import atomic_path
from ..layout import read_records

BG = (255, 255, 255)
INK = (30, 30, 30)


def index_images(class_dir: Path) -> dict[int, dict[int, Path]]:
    """{generated index: {copy index: path}} of one augmented class directory (copy 0 = the original)."""
    out: dict[int, dict[int, Path]] = defaultdict(dict)
    for r in read_records(class_dir)["images"]:
        out[int(r["image_index"])][int(r["copy"])] = Path(class_dir) / r["file"]
    return dict(sorted(out.items()))


def _tile(path: Path, size: int) -> Image.Image:
    img = Image.open(path).convert("RGB")
    return img.resize((size, size), Image.NEAREST)


def _text_width(draw: ImageDraw.ImageDraw, text: str) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text)
    return right - left


def make_grid(
    rows: list[list[Path | None]],
    header: str,
    col_titles: list[str],
    row_titles: list[str],
    tile: int = 96,
    pad: int = 4,
) -> Image.Image:
    """A labelled image grid: `rows` of image paths (None = empty cell)."""
    ncols = max((len(r) for r in rows), default=0)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max([_text_width(probe, t) for t in row_titles] + [0]) + 2 * pad
    top = 34
    w = left + ncols * (tile + pad) + pad
    h = top + len(rows) * (tile + pad) + pad
    canvas = Image.new("RGB", (max(w, _text_width(probe, header) + 2 * pad), h), BG)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 2), header, fill=INK)
    for j, t in enumerate(col_titles[:ncols]):
        draw.text((left + j * (tile + pad), 18), t, fill=INK)
    for i, row in enumerate(rows):
        y = top + i * (tile + pad)
        draw.text((pad, y + tile // 2 - 6), row_titles[i], fill=INK)
        for j, p in enumerate(row):
            if p is not None:
                canvas.paste(_tile(p, tile), (left + j * (tile + pad), y))
    return canvas


def class_grid(class_dir: Path, title: str, max_rows: int = 8, tile: int = 96) -> Image.Image:
    images = index_images(class_dir)
    n_copies = max((max(c) for c in images.values()), default=0) + 1
    keys = list(images)[:max_rows]
    rows = [[images[k].get(c) for c in range(n_copies)] for k in keys]
    cols = ["original"] + [f"augmented {c}" for c in range(1, n_copies)]
    shown = f" (first {len(keys)} of {len(images)})" if len(images) > len(keys) else ""
    return make_grid(
        rows, f"{title}: {len(images)} generated x {n_copies} images{shown}", cols, [f"#{k}" for k in keys], tile=tile
    )


def overview_grid(class_dirs: list[tuple[str, Path]], max_classes: int = 40, tile: int = 64) -> Image.Image:
    """One row per class: its first generated image and that image's augmented copies."""
    rows, titles, n_copies = [], [], 1
    for name, d in class_dirs[:max_classes]:
        images = index_images(d)
        first = images[next(iter(images))] if images else {}
        n_copies = max(n_copies, max(first, default=0) + 1)
        rows.append([first.get(c) for c in range(max(first, default=-1) + 1)])
        titles.append(name)
    cols = ["original"] + [f"aug {c}" for c in range(1, n_copies)]
    shown = f" (first {max_classes} of {len(class_dirs)} classes)" if len(class_dirs) > max_classes else ""
    return make_grid(
        rows, f"First generated image of each class and its augmented copies{shown}", cols, titles, tile=tile
    )


def save(img: Image.Image, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        img.save(tmp, format="PNG", optimize=True)


def write_grids(
    classes: list[dict],
    class_dirs: list[str],
    out_dir: str,
    overview_png: str,
    max_rows: int = 8,
    max_classes: int | None = None,
) -> int:
    """One PNG per class (`<class id>.png`) in `out_dir` for the first `max_classes` classes (a report is read
    by people: 1,000 grids would not be), plus one overview PNG; `class_dirs[i]` holds the augmented images of
    `classes[i]`. Returns the number of class grids written."""
    dirs = [Path(d) for d in class_dirs]
    assert [d.name for d in dirs] == [c["id"] for c in classes], "class directories out of order"
    shown = list(zip(classes, dirs))[:max_classes]
    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        for c, d in shown:
            img = class_grid(d, f'{c["index"]} {c["name"]}: "{c["prompt"]}"', max_rows)
            img.save(tmp / f"{c['id']}.png", format="PNG")  # optimize=True: 8x slower, for ~10% smaller files
    save(overview_grid([(c["name"], d) for c, d in zip(classes, dirs)]), Path(overview_png))
    return len(shown)
