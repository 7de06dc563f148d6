"""Batched, seeded sampling of one class's images with a loaded diffusion pipeline, one batch at a time.

The one sampling path of every pipeline family: what differs between families (prompt encoding, the pipeline
call) is the family's adapter (gendistill.families); batching, seeds, NaN checks and resizing are here.

Why it is faster than the reference loop: the prompt is encoded once per class (not once per image), images
are generated in batches, and resizing to the dataset resolution happens on the device.
Why an image's starting noise does not depend on the batch: every image has its own CPU generator seeded
from (seed, class, image index, attempt). (CPU kernels may still round differently at another batch size:
README, Reproducibility.)
Why memory is bounded by the batch, not the class: `iter_class` yields each batch resized to the dataset
resolution as uint8, checked for NaN/blank images, and keeps nothing; the job writes it out.
Nothing here persists between calls: the batch size (and its halving after an out-of-memory error) belongs
to one call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..families import adapter_for
from ..imageio import png_bytes
from ..pipeline_memory import DEFAULT_BATCH
from ..prototypes import load_prototypes
from ..seeds import image_seed

log = logging.getLogger("gendistill.sampler")


class Cancelled(RuntimeError):
    """The request was dropped between batches (its job went away, or the sampler was told to stop)."""


@dataclass
class Batch:
    indices: list[int]
    images: np.ndarray  # uint8 [b, h, w, 3] at the dataset resolution
    records: list[dict]  # one per image: seed used, attempts, rejected seeds
    batch_size: int  # the batch size in effect when it was made (after any out-of-memory halving)
    pngs: list[bytes] | None = None  # the images as PNG files (sample_request encodes them)


def bad_reasons(imgs: torch.Tensor) -> list[str | None]:
    """Why each generated image [B, 3, H, W] in [0, 1] must be rejected (NaN/inf/blank), or None; one sync."""
    flat = imgs.float().flatten(1)
    finite = torch.isfinite(flat).all(1).tolist()
    std = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0).std(1).tolist()
    return [
        None if f and s >= 1e-3 else ("non-finite values" if not f else "blank (constant) image")
        for f, s in zip(finite, std)
    ]


def is_bad_image(img: torch.Tensor) -> str | None:
    """Why one generated image [3, H, W] in [0, 1] must be rejected, or None."""
    return bad_reasons(img.unsqueeze(0))[0]


def resize(imgs: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bicubic resize of [B, 3, H, W] in [0, 1]; a no-op when already at size."""
    if imgs.shape[-1] == size and imgs.shape[-2] == size:
        return imgs
    return F.interpolate(imgs, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def to_uint8(imgs: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] float in [0, 1] -> [B, H, W, 3] uint8 on the CPU (NaNs become 0 and are rejected earlier)."""
    x = torch.nan_to_num(imgs, nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def with_real(gen: dict, real: dict | None, indices: list[int]) -> dict:
    """The generation settings of one batch: with the class's prototypes file (gendistill.prototypes), image i
    starts from centre i mod k (generation.init: prototypes) and is guided toward representative i mod k
    (generation.real_guidance); without it, `gen` as it is."""
    if real is None:
        return gen
    rows = torch.tensor([i % len(real["centres"]) for i in indices])
    out = dict(gen)
    if gen.get("init", "noise") == "prototypes":
        out["start"] = real["centres"][rows]
    if gen.get("real_guidance"):
        out["guide"] = real["representatives"][rows]
    return out


class Sampler:
    """Holds a loaded pipeline. `batch_size` is only the default of each call; calls never change it."""

    def __init__(
        self, pipe, device: str, dtype: torch.dtype, batch_size: int | str = "auto", family: str | None = None
    ):
        self.pipe, self.device, self.dtype = pipe, device, dtype
        self.adapter = adapter_for(pipe, device, family)  # the pipeline family's encode/generate
        self.batch_size = self.resolve_batch(batch_size)

    def resolve_batch(self, batch_size: int | str | None) -> int:
        if batch_size is None:
            return self.batch_size
        if batch_size == "auto":
            return DEFAULT_BATCH[self.device]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size {batch_size!r}: expected 'auto' or an integer >= 1")
        return batch_size

    @torch.no_grad()
    def _encode(self, prompt: str, guidance: float):
        """The class's prompt, encoded once (a class-conditional model: its label id)."""
        return self.adapter.encode(prompt, guidance)

    @torch.no_grad()
    def _generate(self, emb, seeds: list[int], gen: dict) -> torch.Tensor:
        """One batch, float [B, 3, H, W] in [0, 1], one seeded CPU generator per image."""
        return self.adapter.generate(emb, seeds, gen)

    def _halve_on_oom(self, bs: int) -> int:
        if bs == 1:
            raise  # noqa: PLE0704 - re-raise the out-of-memory error being handled
        torch.cuda.empty_cache()
        log.warning("CUDA out of memory: batch size halved to %d for the rest of this class", bs // 2)
        return bs // 2

    def generate_seeds(
        self, prompt: str, seeds: list[int], gen: dict, out_size: int, batch_size: int | str | None = None
    ):
        """Images for explicit seeds: (uint8 [B, h, w, 3] at out_size, full-resolution float tensor)."""
        self.adapter.check(gen)
        emb = self._encode(prompt, gen["guidance_scale"])
        bs, outs, i = self.resolve_batch(batch_size), [], 0
        while i < len(seeds):
            try:
                outs.append(self._generate(emb, seeds[i : i + bs], gen))
            except torch.cuda.OutOfMemoryError:
                bs = self._halve_on_oom(bs)
                continue
            i += len(outs[-1])
        imgs = torch.cat(outs)
        return to_uint8(resize(imgs.float(), out_size)), imgs

    def _good_batch(
        self, emb, cls: dict, indices: list[int], gen: dict, out_size: int, max_retries: int, real: dict | None = None
    ):
        """Generate `indices`; regenerate NaN/inf/blank images with their next `attempt` seed (recorded)."""
        attempts = dict.fromkeys(indices, 0)
        rejected: dict[int, list] = {i: [] for i in indices}
        result: dict[int, np.ndarray] = {}
        todo = list(indices)
        while todo:
            seeds = [image_seed(cls["seed"], cls["index"], i, attempts[i]) for i in todo]
            imgs = self._generate(emb, seeds, with_real(gen, real, todo))
            reasons = bad_reasons(imgs)
            small = to_uint8(resize(imgs.float(), out_size))
            retry = []
            for k, i in enumerate(todo):
                if reasons[k] is None:
                    result[i] = small[k]
                    continue
                rejected[i].append({"seed": seeds[k], "reason": reasons[k]})
                log.warning("class %s image %d seed %d rejected (%s)", cls["id"], i, seeds[k], reasons[k])
                if attempts[i] >= max_retries:
                    raise RuntimeError(
                        f"class {cls['id']} image {i}: {max_retries + 1} attempts all gave bad "
                        f"images ({reasons[k]}). Fix: use generation.vae_dtype float32/bfloat16, "
                        f"or check the model weights."
                    )
                attempts[i] += 1
                retry.append(i)
            todo = retry
        records = [
            {
                "class_index": cls["index"],
                "class_name": cls["name"],
                "class_id": cls["id"],
                "prompt": cls["prompt"],
                "image_index": i,
                "seed": image_seed(cls["seed"], cls["index"], i, attempts[i]),
                "attempt": attempts[i],
                "rejected": rejected[i],
            }
            for i in indices
        ]
        return np.stack([result[i] for i in indices]), records

    def iter_class(
        self,
        cls: dict,
        gen: dict,
        out_size: int,
        batch_size: int | str | None = None,
        max_retries: int = 3,
        cancelled: Callable[[], str | None] | None = None,
    ) -> Iterator[Batch]:
        """Yield cls['n_generated'] images batch by batch, in index order.

        `cancelled()` is asked before each batch; when it gives a reason, Cancelled is raised and no more
        work is done for this class.
        """
        bs = self.resolve_batch(batch_size)
        self.adapter.check(gen)
        emb = self._encode(cls["prompt"], gen["guidance_scale"])
        real = load_prototypes(cls["prototypes"]) if cls.get("prototypes") else None
        n, i = cls["n_generated"], 0
        while i < n:
            why = cancelled() if cancelled else None
            if why:
                raise Cancelled(why)
            indices = list(range(i, min(n, i + bs)))
            try:
                images, records = self._good_batch(emb, cls, indices, gen, out_size, max_retries, real)
            except torch.cuda.OutOfMemoryError:
                bs = self._halve_on_oom(bs)
                continue
            yield Batch(indices, images, records, bs)
            i += len(indices)

    def sample_class(
        self, cls: dict, gen: dict, out_size: int, max_retries: int = 3, batch_size: int | str | None = None
    ):
        """The whole class in memory: (uint8 [N, h, w, 3], records, seconds). For small classes and tests."""
        t0 = time.perf_counter()
        batches = list(self.iter_class(cls, gen, out_size, batch_size, max_retries))
        return (
            np.concatenate([b.images for b in batches]),
            [r for b in batches for r in b.records],
            time.perf_counter() - t0,
        )


def sample_request(
    sampler: Sampler,
    req: dict,
    env: dict,
    emit: Callable[[Batch], None],
    cancelled: Callable[[], str | None] | None,
    extra_meta: dict,
) -> dict:
    """Run one validated sample request (protocol.validate_sample_request): every batch goes to `emit`, in
    index order, with its images encoded as PNG files (here, so that the job that writes them needs neither
    numpy nor PIL); returns the class's meta for records.json. The one sampling path of the sampler process
    and of in-process jobs (`generation.server: false`).
    """
    t0 = time.perf_counter()
    requested = req.get("batch_size", "auto")
    sizes = []
    for batch in sampler.iter_class(
        req["cls"], req["gen"], req["out_size"], requested, req.get("max_retries", 3), cancelled
    ):
        batch.pngs = [png_bytes(img) for img in batch.images]
        emit(batch)
        if not sizes or sizes[-1] != batch.batch_size:
            sizes.append(batch.batch_size)
    seconds = time.perf_counter() - t0
    n = req["cls"]["n_generated"]
    log.info(
        "class %s: %d images in %.2fs (%.1f img/s, batch %s)",
        req["cls"]["id"],
        n,
        seconds,
        n / seconds,
        "->".join(map(str, sizes)),
    )
    return {
        **env,
        **extra_meta,
        "generation": req["gen"],
        "out_size": req["out_size"],
        "seconds": round(seconds, 4),
        "batch_size_requested": requested,
        "batch_size_effective": sizes[-1],
        "batch_sizes": sizes,
    }
