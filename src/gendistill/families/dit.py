"""DiT (DiTPipeline), class-conditional on ImageNet's labels: it is given a class id, not a text. A class's prompt
must name one of the model's labels (id2label; each comma-separated synonym counts, case is ignored) or be the
class id itself. The DiT transformer works on 2x2 patches of SD's KL latents and generates at its native
resolution only."""

from __future__ import annotations

from .base import Family

FAMILY = Family(
    name="dit",
    title="DiT, class-conditional (ImageNet labels)",
    pipelines=("DiTPipeline",),
    example="facebook/DiT-XL-2-256",
    tiny_decoders="madebyollin/taesd",
    latent_channels=4,
    conditioning="class",
    native_resolution_only=True,
    tiny_patch_size=2,
)
FAMILIES = (FAMILY,)


def dit_label_table(id2label: dict) -> dict[str, int]:
    """label text -> class id, as DiTPipeline builds it: every comma-separated synonym of a class names it."""
    table: dict[str, int] = {}
    for key, value in id2label.items():
        for label in str(value).split(","):
            table[label.strip()] = int(key)
    return dict(sorted(table.items()))


def dit_label_id(prompt: str, table: dict[str, int]) -> int | None:
    """The class id a prompt names: a label (exact, then ignoring case), or the id itself as digits."""
    p = prompt.strip()
    if p in table:
        return table[p]
    lower = {k.lower(): v for k, v in table.items()}
    if p.lower() in lower:
        return lower[p.lower()]
    if p.isdigit() and int(p) in set(table.values()):
        return int(p)
    return None
