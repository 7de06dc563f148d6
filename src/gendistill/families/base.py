"""What a generator family is: its facts (`Family`: what the plan checks before any job, read from the model's
JSON configs) and its adapter (`Adapter`: how the sampler drives its pipeline).

Importing this module imports neither torch nor diffusers: the plan imports it (through the family modules)
when Snakemake builds the DAG; the adapter imports torch when it runs.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Family:
    """One diffusers pipeline family: what the plan and the sampler need to know about it."""

    name: str  # model.tiny.family, records.json's `family`
    title: str
    pipelines: tuple[str, ...]  # diffusers pipeline classes it serves; the tiny pipeline is of the last one
    example: str  # a real checkpoint of the family
    tiny_decoders: str  # the published AutoencoderTiny weights that decode its latents ("" if none)
    latent_channels: int  # of its real autoencoder; the tiny pipeline mirrors it
    adapter: type[Adapter]  # drives its pipelines (sampling, FLOPs per image)
    build_tiny: Callable[[dict], object]  # a tiny random-weight pipeline of `pipelines[-1]` from a full tiny spec
    conditioning: str = "text"  # "text" (the prompt) or "class" (the prompt names one of the model's labels)
    min_multiple: int = 8  # the pipeline's own check on height/width
    latent_packing: int = 1  # latent pixels per token side (FLUX packs 2x2 latent patches into one token)
    native_resolution_only: bool = False  # generates at its denoiser's sample size only (DiT)
    classifier_free_guidance: bool = True  # guidance > 1 adds an unconditional pass (False: embedded in the model)
    tiny_patch_size: int = 1  # the tiny pipeline's denoiser patch size
    # The stem of its example config, configs/models/<stem>.yaml (a real checkpoint's steps, guidance, resolution and
    # tiny decoder), and of that checkpoint's architecture configs, benchmarks/model_configs/<stem>/ (no weights;
    # FLOPs per image). None: a related family's example stands for it.
    example_config: str | None = None

    def adapter_for(self, pipe, device=None) -> Adapter:
        return self.adapter(self, pipe, device)


class UnsupportedModel(ValueError):
    """The model's pipeline class has no adapter; str(err) lists the supported ones."""


def autoencoder_facts(config: dict) -> dict:
    """Latent channels and pixels per latent pixel of an autoencoder config (AutoencoderKL, AutoencoderDC,
    AutoencoderTiny)."""
    if "decoder_block_out_channels" in config and "upsampling_scaling_factor" in config:  # AutoencoderTiny
        scale = config["upsampling_scaling_factor"] ** (len(config["decoder_block_out_channels"]) - 1)
    elif "encoder_block_out_channels" in config:  # AutoencoderDC
        scale = 2 ** (len(config["encoder_block_out_channels"]) - 1)
    else:  # AutoencoderKL
        scale = 2 ** (len(config.get("block_out_channels", [0] * 4)) - 1)
    return {"latent_channels": config.get("latent_channels", 4), "scale": scale, "class": config.get("_class_name", "")}


def facts_from_configs(family: Family, pipeline: str, vae: dict, denoiser: dict, where: str) -> dict:
    """The plan's facts about a model of `family`, from its autoencoder and denoiser configs: latent channels and
    scale, the resolution multiple it takes (autoencoder scale x patch size x packing, and the pipeline's own
    multiple), and the native resolution of a model that generates at that only. `labels` (a class-conditional
    model's label table) is filled in by the caller that has them."""
    ae = autoencoder_facts(vae)
    patch = denoiser.get("patch_size", 1) or 1
    step = ae["scale"] * patch * family.latent_packing
    multiple = math.lcm(step, family.min_multiple, 8)  # the config schema asks for multiples of 8 anyway
    native = denoiser.get("sample_size", 0) * ae["scale"] if family.native_resolution_only else None
    return {
        "family": family.name,
        "pipeline": pipeline,
        "where": where,
        "latent_channels": ae["latent_channels"],
        "scale": ae["scale"],
        "multiple": multiple,
        "native_resolution": native,
        "labels": None,
    }


# ---- the adapter: how the sampler drives a family's pipeline ---------------------------------------------------
# torch is imported inside the functions that use it: the plan imports this module (for the facts) without it.


def generators(seeds: list[int]) -> list[torch.Generator]:
    import torch  # deferred: heavy, and not needed for the facts

    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def count_flops(fn) -> int:
    """FLOPs of one call (2 per multiply-add; convolutions, matmuls, attention via the math SDPA backend)."""
    import torch  # deferred: heavy, and not needed for the facts
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def where(module) -> dict:
    """The device and dtype of a module's parameters (as keyword arguments of a tensor factory)."""
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def token_ids(module, length: int) -> torch.Tensor:
    """A batch of one sequence of `length` token ids on the module's device (FLOPs do not depend on the ids)."""
    import torch  # deferred: heavy, and not needed for the facts

    return torch.zeros(1, length, dtype=torch.long, device=where(module)["device"])


def call_default(pipe, name: str, fallback):
    """The default of `pipe.__call__`'s argument `name` (the value a plain `pipe(prompt)` call uses)."""
    try:
        return inspect.signature(pipe.__call__).parameters[name].default
    except (KeyError, TypeError, ValueError):
        return fallback


class Adapter:
    """What differs between diffusers pipelines, and nothing else; `Sampler` (sampling/generate.py) does the rest
    (batches, NaN checks, resizing, records) for every family alike. Each family module subclasses it:

    * `encode(prompt, guidance)`: encodes a class's prompt once (a class-conditional DiT maps it to a label id);
    * `generate(emb, seeds, gen)`: one batched pipeline call, one seeded CPU generator per image (so an image's
      starting noise does not depend on the batch), returning float images [B, 3, H, W] in [0, 1];
    * `text_flops()` and `denoiser_call(resolution, guidance)`: what `flops` counts, on whatever device the
      components are (the meta device for the full-size architectures in benchmarks/flops_families.py).
    """

    denoiser = "transformer"  # the attribute holding the denoising network

    def __init__(self, family: Family, pipe, device=None):
        self.family = family
        self.pipe = pipe
        self.device = device if device is not None else getattr(pipe, "_execution_device", None)

    # -- sampling
    def encode(self, prompt: str, guidance: float):
        raise NotImplementedError

    def generate(self, emb, seeds: list[int], gen: dict) -> torch.Tensor:
        raise NotImplementedError

    def _sample(self, seeds: list[int], gen: dict, **family_kwargs) -> torch.Tensor:
        """One pipeline call of a text-to-image family: an image per seed at the run's resolution and steps, as a
        float tensor; the family adds its prompt embeddings and options. With start latents (`gen["start"]`,
        generation.init: prototypes) the family's img2img pipeline starts from them at `gen["strength"]`; with
        guidance targets (`gen["guide"]`, generation.real_guidance) the denoiser is steered toward them."""
        import contextlib

        pipe = self.pipe
        kwargs = dict(
            num_inference_steps=gen["steps"],
            guidance_scale=gen["guidance_scale"],
            height=gen["resolution"],
            width=gen["resolution"],
            generator=generators(seeds),
            output_type="pt",
            **family_kwargs,
        )
        if gen.get("start") is not None:
            pipe = self.img2img()
            accepted = inspect.signature(pipe.__call__).parameters
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}  # SD/SDXL img2img take no height/width
            w = where(self.net())
            kwargs.update(image=gen["start"].to(**w), strength=gen["strength"])
        guide = contextlib.nullcontext()
        if gen.get("guide") is not None:
            from ..sampling.guidance import coda_guidance  # deferred: torch (the plan imports this module)

            rg = gen["real_guidance"]
            guide = coda_guidance(pipe, gen["guide"], rg["weight"], rg["fraction"])
        with guide:
            return pipe(**kwargs).images

    def img2img(self):
        """The family's img2img pipeline over the loaded pipeline's components (made once, shares the weights)."""
        if getattr(self, "_img2img", None) is None:
            import diffusers  # deferred: heavy (the plan imports this module)

            from ..prototypes import IMG2IMG

            name = IMG2IMG.get(self.family.name)
            if name is None:
                raise ValueError(
                    f"generation.init: prototypes needs an img2img pipeline, and diffusers has none for the "
                    f"{self.family.title} family. Fix: generation.init: noise, or a model of the families "
                    f"{', '.join(IMG2IMG)}."
                )
            self._img2img = getattr(diffusers, name).from_pipe(self.pipe)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def check(self, gen: dict) -> None:
        """Refuse settings this model cannot sample (the plan checks them earlier, from the configs)."""
        multiple = self.facts()["multiple"]
        if gen["resolution"] % multiple:
            raise ValueError(
                f"resolution {gen['resolution']} is not a multiple of {multiple}, which "
                f"{type(self.pipe).__name__} needs. Fix: generation.resolution a multiple of {multiple}."
            )

    def facts(self) -> dict:
        """The plan's facts (facts_from_configs), from the loaded pipeline's configs."""
        return facts_from_configs(
            self.family,
            type(self.pipe).__name__,
            dict(self.pipe.vae.config),
            dict(self.net().config),
            type(self.pipe).__name__,
        )

    # -- FLOPs per image
    def net(self):
        """The denoising network (the eager module under a torch.compile wrapper: FLOPs are counted eagerly)."""
        den = getattr(self.pipe, self.denoiser)
        return getattr(den, "_orig_mod", den)

    def text_flops(self) -> int:
        return 0

    def denoiser_call(self, resolution: int, guidance: float):
        raise NotImplementedError

    def latent(self, resolution: int, channels: int | None = None) -> torch.Tensor:
        import torch  # deferred: heavy, and not needed for the facts

        ae = autoencoder_facts(dict(self.pipe.vae.config))
        n = resolution // ae["scale"]
        return torch.zeros(1, channels or ae["latent_channels"], n, n, **where(self.net()))

    def evals_per_image(self, steps: int, guidance: float) -> int:
        return steps * (2 if self.family.classifier_free_guidance and guidance > 1.0 else 1)

    def flops(self, resolution: int, steps: int = 1, guidance: float = 0.0) -> dict:
        """FLOPs per image at `resolution`: the text encoders (once per class), one denoiser evaluation, the
        evaluations per image (steps, x2 under classifier-free guidance), the decode, and the per-image total."""
        vae = self.pipe.vae
        z = self.latent(resolution)
        z = z.to(where(vae)["dtype"])
        den = count_flops(self.denoiser_call(resolution, guidance))
        dec = count_flops(lambda: vae.decode(z))
        evals = self.evals_per_image(steps, guidance)
        return {
            "text_per_class": self.text_flops(),
            "denoiser_per_eval": den,
            "evals_per_image": evals,
            "decoder": dec,
            "per_image": den * evals + dec,
        }


def pooled_prompt_kwargs(emb, batch: int, guidance: float) -> dict:
    """The pipeline's prompt arguments for `batch` images of a family with pooled text embeddings (SDXL, SD3):
    `emb` as its encode_prompt returns them, the negative ones only under classifier-free guidance."""
    pe, npe, ppe, nppe = emb
    kwargs = {"prompt_embeds": pe.expand(batch, -1, -1), "pooled_prompt_embeds": ppe.expand(batch, -1)}
    if guidance > 1.0:
        kwargs.update(
            negative_prompt_embeds=npe.expand(batch, -1, -1), negative_pooled_prompt_embeds=nppe.expand(batch, -1)
        )
    return kwargs
