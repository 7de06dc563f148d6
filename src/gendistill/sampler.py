"""Batched, seeded sampling of one class's images with a loaded text-to-image pipeline.

Why it is faster than the reference loop: the prompt is encoded once per class (not once per image), images
are generated in batches, and resizing to the dataset resolution happens on the device in one call.
Why images do not depend on the batch size: every image has its own CPU generator seeded from
(seed, class, image index), so its starting noise is the same whatever batch it lands in.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .seeds import image_seed

log = logging.getLogger("gendistill.sampler")

DEFAULT_BATCH = {"cuda": 32, "cpu": 8}


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("generation.device: cuda requested but no CUDA device is visible. "
                           "Fix: run on a GPU node, or set generation.device: cpu.")
    return name


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def load_pipeline(source: str, revision: str | None, device: str, dtype: torch.dtype, compile_unet: bool = False,
                  deterministic: bool = False, vae_dtype: str = "auto"):
    """Load a diffusers text-to-image pipeline from a hub id or a local directory (HF_HUB_OFFLINE honoured)."""
    from diffusers import AutoPipelineForText2Image

    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    kwargs = {"dtype": dtype}
    if revision:
        kwargs["revision"] = revision
    if dtype == torch.float16 and not Path(source).exists():
        kwargs["variant"] = "fp16"  # the hub checkpoint ships fp16 weights: half the download and load time
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        if "variant" not in kwargs:
            raise
        log.info("no fp16 variant (%s); loading the default weights", e)
        kwargs.pop("variant")
        pipe = AutoPipelineForText2Image.from_pretrained(source, **kwargs)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if device == "cuda":
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    configure_vae(pipe, vae_dtype)
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs", fullgraph=True)
    return pipe


def load_from_spec(load: dict):
    """(pipe, device, dtype) from the JSON load spec the sample jobs send (see workflow/rules/sample.smk)."""
    device = resolve_device(load["device"])
    dtype = resolve_dtype(load["dtype"], device)
    pipe = load_pipeline(load["source"], load.get("revision"), device, dtype, load.get("compile", False),
                         load.get("deterministic", False), load.get("vae_dtype", "auto"))
    return pipe, device, dtype


VAE_DTYPES = ("auto", "float32", "bfloat16", "float16")


def configure_vae(pipe, mode: str = "auto") -> None:
    """Set the dtype the VAE decodes in.

    auto: diffusers' behaviour. SDXL's VAE config says force_upcast, so an fp16 pipeline casts the VAE to fp32
    for every decode and back (fp16 activations of the stock SDXL VAE overflow to NaN).
    float32: the same pixels as auto, the VAE kept in fp32 (no cast per call).
    bfloat16: fp32's exponent range (no overflow) at tensor-core speed; pixels differ slightly from fp32.
    float16: no upcast; only for fp16-safe VAE weights (e.g. an "fp16-fix" VAE). NaN images are still caught.
    """
    if mode == "auto" or getattr(pipe, "vae", None) is None:
        return
    if mode not in VAE_DTYPES:
        raise ValueError(f"vae_dtype {mode!r}: expected one of {VAE_DTYPES}")
    vae = pipe.vae
    vae.to(getattr(torch, mode))
    vae.register_to_config(force_upcast=False)
    decode = vae.decode

    def decode_in_vae_dtype(z, *args, **kwargs):  # the pipeline passes latents in the UNet's dtype
        return decode(z.to(vae.dtype), *args, **kwargs)

    vae.decode = decode_in_vae_dtype


def is_bad_image(img: torch.Tensor) -> str | None:
    """Why a generated image [3, H, W] in [0, 1] must be rejected (NaN/inf/blank), or None."""
    if not torch.isfinite(img).all():
        return "non-finite values"
    if float(img.float().std()) < 1e-3:
        return "blank (constant) image"
    return None


class Sampler:
    """Holds a loaded pipeline; `sample_class` returns uint8 images plus one provenance record per image."""

    def __init__(self, pipe, device: str, dtype: torch.dtype, batch_size: int | str = "auto"):
        self.pipe, self.device, self.dtype = pipe, device, dtype
        self.batch_size = DEFAULT_BATCH[device] if batch_size == "auto" else int(batch_size)

    @torch.no_grad()
    def _encode(self, prompt: str, guidance: float):
        pe, npe, ppe, nppe = self.pipe.encode_prompt(prompt=prompt, device=self.device, num_images_per_prompt=1,
                                                     do_classifier_free_guidance=guidance > 1.0)
        return pe, npe, ppe, nppe

    @torch.no_grad()
    def _generate(self, emb, seeds: list[int], gen: dict) -> torch.Tensor:
        pe, npe, ppe, nppe = emb
        b = len(seeds)
        kwargs = {}
        if gen["guidance_scale"] > 1.0:
            kwargs = {"negative_prompt_embeds": npe.expand(b, -1, -1), "negative_pooled_prompt_embeds": nppe.expand(b, -1)}
        out = self.pipe(prompt_embeds=pe.expand(b, -1, -1), pooled_prompt_embeds=ppe.expand(b, -1),
                        num_inference_steps=gen["steps"], guidance_scale=gen["guidance_scale"],
                        height=gen["resolution"], width=gen["resolution"],
                        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
                        output_type="pt", **kwargs)
        return out.images

    def _generate_resilient(self, emb, seeds: list[int], gen: dict) -> torch.Tensor:
        """Generate in chunks of self.batch_size; on CUDA OOM halve the batch size and carry on."""
        outs, i = [], 0
        while i < len(seeds):
            chunk = seeds[i:i + self.batch_size]
            try:
                outs.append(self._generate(emb, chunk, gen))
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("CUDA out of memory: batch size halved to %d", self.batch_size)
                torch.cuda.empty_cache()
                continue
            i += len(chunk)
        return torch.cat(outs)

    def generate_seeds(self, prompt: str, seeds: list[int], gen: dict, out_size: int):
        """Images for explicit seeds: (uint8 [B, h, w, 3] at out_size, full-resolution float tensor)."""
        emb = self._encode(prompt, gen["guidance_scale"])
        imgs = self._generate_resilient(emb, seeds, gen)
        return to_uint8(resize(imgs.float(), out_size)), imgs

    def sample_class(self, cls: dict, gen: dict, out_size: int, max_retries: int = 3):
        """Generate cls['n_generated'] images for one class; reject and regenerate NaN/inf/blank ones.

        A rejected image is regenerated with the next `attempt` seed; the seed used and the rejected ones are
        recorded, so every packaged image can be regenerated alone.
        """
        t0 = time.perf_counter()
        n = cls["n_generated"]
        attempts = [0] * n
        rejected: list[list[dict]] = [[] for _ in range(n)]
        result: list[np.ndarray | None] = [None] * n
        todo = list(range(n))
        while todo:
            seeds = [image_seed(cls["seed"], cls["index"], i, attempts[i]) for i in todo]
            small, imgs = self.generate_seeds(cls["prompt"], seeds, gen, out_size)
            retry = []
            for k, i in enumerate(todo):
                why = is_bad_image(imgs[k])
                if why is None:
                    result[i] = small[k]
                    continue
                rejected[i].append({"seed": seeds[k], "reason": why})
                log.warning("class %s image %d seed %d rejected (%s)", cls["id"], i, seeds[k], why)
                if attempts[i] >= max_retries:
                    raise RuntimeError(f"class {cls['id']} image {i}: {max_retries + 1} attempts all gave bad "
                                       f"images ({why}). Fix: use generation.dtype float32/bfloat16 for the VAE, "
                                       f"or check the model weights.")
                attempts[i] += 1
                retry.append(i)
            todo = retry
        records = [{"class_index": cls["index"], "class_name": cls["name"], "class_id": cls["id"],
                    "prompt": cls["prompt"], "image_index": i,
                    "seed": image_seed(cls["seed"], cls["index"], i, attempts[i]),
                    "attempt": attempts[i], "rejected": rejected[i]} for i in range(n)]
        seconds = time.perf_counter() - t0
        log.info("class %s: %d images in %.2fs (%.1f img/s, batch %d)", cls["id"], n, seconds, n / seconds,
                 self.batch_size)
        return np.stack(result), records, seconds


def resize(imgs: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bicubic resize of [B, 3, H, W] in [0, 1]; a no-op when already at size."""
    if imgs.shape[-1] == size and imgs.shape[-2] == size:
        return imgs
    return F.interpolate(imgs, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def to_uint8(imgs: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] float in [0, 1] -> [B, H, W, 3] uint8 on the CPU (NaNs become 0 and are rejected earlier)."""
    x = torch.nan_to_num(imgs, nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def environment(pipe_source: str, revision: str | None, device: str, dtype: torch.dtype,
                vae_dtype: str = "auto") -> dict:
    import diffusers
    import transformers

    env = {"model_source": pipe_source, "model_revision": revision, "device": device, "dtype": str(dtype),
           "vae_dtype": vae_dtype,
           "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def write_class_output(out_dir: Path, images: np.ndarray, records: list[dict], meta: dict) -> None:
    """PNG per image + records.json, written to a temp dir and renamed: a killed job leaves nothing valid."""
    from .atomic import atomic_path
    from .imageio import save_png

    with atomic_path(Path(out_dir)) as tmp:
        tmp.mkdir(parents=True)
        for rec, img in zip(records, images):
            rec["file"] = f"{rec['image_index']:04d}.png"
            rec["sha256"] = save_png(tmp / rec["file"], img)
        (tmp / "records.json").write_text(json.dumps({"meta": meta, "images": records}, indent=1))
