"""One small adapter per pipeline family: what differs between diffusers pipelines, and nothing else.

Each adapter
* `encode(prompt, guidance)`: encodes a class's prompt once (a class-conditional DiT maps it to a label id);
* `generate(emb, seeds, gen)`: one batched pipeline call, one seeded CPU generator per image (so an image's
  starting noise does not depend on the batch), returning float images [B, 3, H, W] in [0, 1];
* `flops(resolution, steps, guidance)`: FLOPs per image of its components, counted on whatever device they are
  on (the meta device for the full-size architectures in benchmarks/flops_families.py).
`Sampler` (generate.py) does everything else (batches, NaN checks, resizing, records) for every family alike.
"""

from __future__ import annotations

import inspect

import torch

from ..families import BY_NAME, BY_PIPELINE, family_for_class
from ..families.base import autoencoder_facts, facts_from_configs
from ..families.dit import dit_label_id


def generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def count_flops(fn) -> int:
    """FLOPs of one call (2 per multiply-add; convolutions, matmuls, attention via the math SDPA backend)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def _where(module) -> dict:
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def _ids(module, length: int) -> torch.Tensor:
    return torch.zeros(1, length, dtype=torch.long, device=_where(module)["device"])


def _call_default(pipe, name: str, fallback):
    """The default of `pipe.__call__`'s argument `name` (the value a plain `pipe(prompt)` call uses)."""
    try:
        return inspect.signature(pipe.__call__).parameters[name].default
    except (KeyError, TypeError, ValueError):
        return fallback


class Adapter:
    family = ""
    denoiser = "transformer"  # the attribute holding the denoising network
    cfg_doubles = True  # guidance > 1 runs the denoiser on a conditional and an unconditional half

    def __init__(self, pipe, device=None):
        self.pipe = pipe
        self.device = device if device is not None else getattr(pipe, "_execution_device", None)

    # -- sampling
    def encode(self, prompt: str, guidance: float):
        raise NotImplementedError

    def generate(self, emb, seeds: list[int], gen: dict) -> torch.Tensor:
        raise NotImplementedError

    def _sample(self, seeds: list[int], gen: dict, **family_kwargs) -> torch.Tensor:
        """One pipeline call of a text-to-image family: an image per seed at the run's resolution and steps, as a
        float tensor; the family adds its prompt embeddings and options."""
        return self.pipe(
            num_inference_steps=gen["steps"],
            guidance_scale=gen["guidance_scale"],
            height=gen["resolution"],
            width=gen["resolution"],
            generator=generators(seeds),
            output_type="pt",
            **family_kwargs,
        ).images

    def check(self, gen: dict) -> None:
        """Refuse settings this model cannot sample (the plan checks them earlier, from the configs)."""
        multiple = self.facts()["multiple"]
        if gen["resolution"] % multiple:
            raise ValueError(
                f"resolution {gen['resolution']} is not a multiple of {multiple}, which "
                f"{type(self.pipe).__name__} needs. Fix: generation.resolution a multiple of {multiple}."
            )

    def facts(self) -> dict:
        return facts_from_configs(
            BY_NAME[self.family],
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
        vae = self.pipe.vae
        ae = autoencoder_facts(dict(vae.config))
        n = resolution // ae["scale"]
        return torch.zeros(1, channels or ae["latent_channels"], n, n, **_where(self.net()))

    def evals_per_image(self, steps: int, guidance: float) -> int:
        return steps * (2 if self.cfg_doubles and guidance > 1.0 else 1)

    def flops(self, resolution: int, steps: int = 1, guidance: float = 0.0) -> dict:
        """FLOPs per image at `resolution`: the text encoders (once per class), one denoiser evaluation, the
        evaluations per image (steps, x2 under classifier-free guidance), the decode, and the per-image total."""
        vae = self.pipe.vae
        z = self.latent(resolution)
        z = z.to(_where(vae)["dtype"])
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


class SDXLAdapter(Adapter):
    """StableDiffusionXLPipeline (SDXL-Turbo): two CLIP encoders, pooled embeddings, a UNet."""

    family, denoiser = "sdxl", "unet"

    def encode(self, prompt, guidance):
        pe, npe, ppe, nppe = self.pipe.encode_prompt(
            prompt=prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=guidance > 1.0
        )
        return pe, npe, ppe, nppe

    def generate(self, emb, seeds, gen):
        pe, npe, ppe, nppe = emb
        b = len(seeds)
        kwargs = {}
        if gen["guidance_scale"] > 1.0:
            kwargs = {
                "negative_prompt_embeds": npe.expand(b, -1, -1),
                "negative_pooled_prompt_embeds": nppe.expand(b, -1),
            }
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            pooled_prompt_embeds=ppe.expand(b, -1),
            **kwargs,
        )

    def text_flops(self):
        te1, te2 = self.pipe.text_encoder, self.pipe.text_encoder_2
        ids = _ids(te1, te1.config.max_position_embeddings)
        return count_flops(lambda: (te1(ids, output_hidden_states=True), te2(ids, output_hidden_states=True)))

    def denoiser_call(self, resolution, guidance):
        unet = self.net()
        w = _where(unet)
        lat = self.latent(resolution, unet.config.in_channels)
        ehs = torch.zeros(1, 77, unet.config.cross_attention_dim, **w)
        add = {
            "text_embeds": torch.zeros(1, self.pipe.text_encoder_2.config.projection_dim, **w),
            "time_ids": torch.zeros(1, 6, **w),
        }
        return lambda: unet(lat, 999, encoder_hidden_states=ehs, added_cond_kwargs=add)


class SDAdapter(Adapter):
    """StableDiffusionPipeline (SD 1.x/2.x, sd-turbo): one CLIP encoder, a UNet."""

    family, denoiser = "sd", "unet"

    def encode(self, prompt, guidance):
        return self.pipe.encode_prompt(prompt, self.device, 1, guidance > 1.0)

    def generate(self, emb, seeds, gen):
        pe, npe = emb
        b = len(seeds)
        kwargs = {"negative_prompt_embeds": npe.expand(b, -1, -1)} if gen["guidance_scale"] > 1.0 else {}
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            **kwargs,
        )

    def text_flops(self):
        te = self.pipe.text_encoder
        return count_flops(lambda: te(_ids(te, te.config.max_position_embeddings)))

    def denoiser_call(self, resolution, guidance):
        unet = self.net()
        lat = self.latent(resolution, unet.config.in_channels)
        ehs = torch.zeros(1, 77, unet.config.cross_attention_dim, **_where(unet))
        return lambda: unet(lat, 999, encoder_hidden_states=ehs)


class SD3Adapter(Adapter):
    """StableDiffusion3Pipeline (SD3, SD3.5, their Turbo versions): two CLIP encoders + T5, an MMDiT."""

    family = "sd3"

    @property
    def max_sequence_length(self) -> int:
        return _call_default(self.pipe, "max_sequence_length", 256)

    def encode(self, prompt, guidance):
        return self.pipe.encode_prompt(
            prompt=prompt,
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=guidance > 1.0,
            max_sequence_length=self.max_sequence_length,
        )

    def generate(self, emb, seeds, gen):
        pe, npe, ppe, nppe = emb
        b = len(seeds)
        kwargs = {}
        if gen["guidance_scale"] > 1.0:
            kwargs = {
                "negative_prompt_embeds": npe.expand(b, -1, -1),
                "negative_pooled_prompt_embeds": nppe.expand(b, -1),
            }
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            pooled_prompt_embeds=ppe.expand(b, -1),
            max_sequence_length=self.max_sequence_length,
            **kwargs,
        )

    def text_flops(self):
        p = self.pipe
        clip = _ids(p.text_encoder, 77)
        t5 = _ids(p.text_encoder_3, self.max_sequence_length)
        return count_flops(
            lambda: (
                p.text_encoder(clip, output_hidden_states=True),
                p.text_encoder_2(clip, output_hidden_states=True),
                p.text_encoder_3(t5),
            )
        )

    def denoiser_call(self, resolution, guidance):
        tr = self.net()
        w, c = _where(tr), tr.config
        lat = self.latent(resolution, c.in_channels)
        ehs = torch.zeros(1, 77 + self.max_sequence_length, c.joint_attention_dim, **w)
        pooled = torch.zeros(1, c.pooled_projection_dim, **w)
        t = torch.full((1,), 999.0, **w)
        return lambda: tr(hidden_states=lat, encoder_hidden_states=ehs, pooled_projections=pooled, timestep=t)


class FluxAdapter(Adapter):
    """FluxPipeline (FLUX.1-schnell/-dev): CLIP (pooled) + T5, the FLUX transformer on packed 2x2 latents.

    guidance_scale is the embedded guidance of guidance-distilled checkpoints (FLUX.1-dev); schnell has no
    guidance embedding and ignores it. No classifier-free guidance (one denoiser evaluation per step). The T5
    window is 256 tokens for schnell (its model card), 512 for guidance-embedded models.
    """

    family = "flux"
    cfg_doubles = False

    @property
    def max_sequence_length(self) -> int:
        return 512 if self.net().config.guidance_embeds else 256

    def encode(self, prompt, guidance):
        pe, ppe, _ = self.pipe.encode_prompt(
            prompt=prompt,
            prompt_2=None,
            device=self.device,
            num_images_per_prompt=1,
            max_sequence_length=self.max_sequence_length,
        )
        return pe, ppe

    def generate(self, emb, seeds, gen):
        pe, ppe = emb
        b = len(seeds)
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            pooled_prompt_embeds=ppe.expand(b, -1),
            max_sequence_length=self.max_sequence_length,
        )

    def text_flops(self):
        p = self.pipe
        return count_flops(
            lambda: (
                p.text_encoder(_ids(p.text_encoder, 77)),
                p.text_encoder_2(_ids(p.text_encoder_2, self.max_sequence_length)),
            )
        )

    def denoiser_call(self, resolution, guidance):
        tr = self.net()
        w, c = _where(tr), tr.config
        n = resolution // autoencoder_facts(dict(self.pipe.vae.config))["scale"] // 2
        L = self.max_sequence_length
        x = torch.zeros(1, n * n, c.in_channels, **w)
        kw = {
            "encoder_hidden_states": torch.zeros(1, L, c.joint_attention_dim, **w),
            "pooled_projections": torch.zeros(1, c.pooled_projection_dim, **w),
            "timestep": torch.ones(1, **w),
            "img_ids": torch.zeros(n * n, 3, **w),
            "txt_ids": torch.zeros(L, 3, **w),
        }
        if c.guidance_embeds:
            kw["guidance"] = torch.full((1,), float(guidance), **w)
        return lambda: tr(hidden_states=x, **kw)


class PixArtAdapter(Adapter):
    """PixArtAlphaPipeline / PixArtSigmaPipeline: T5 with an attention mask, the PixArt transformer. Resolution
    binning is off, so the requested resolution is the one sampled."""

    family = "pixart"

    @property
    def max_sequence_length(self) -> int:
        return _call_default(self.pipe, "max_sequence_length", 300)  # 120 for alpha, 300 for Sigma

    def encode(self, prompt, guidance):
        return self.pipe.encode_prompt(
            prompt,
            do_classifier_free_guidance=guidance > 1.0,
            negative_prompt="",
            num_images_per_prompt=1,
            device=self.device,
            clean_caption=False,
            max_sequence_length=self.max_sequence_length,
        )

    def generate(self, emb, seeds, gen):
        pe, pam, npe, npam = emb
        b = len(seeds)
        kwargs = {}
        if gen["guidance_scale"] > 1.0:
            kwargs = {
                "negative_prompt": None,
                "negative_prompt_embeds": npe.expand(b, -1, -1),
                "negative_prompt_attention_mask": npam.expand(b, -1),
            }
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            prompt_attention_mask=pam.expand(b, -1),
            clean_caption=False,
            use_resolution_binning=False,
            max_sequence_length=self.max_sequence_length,
            **kwargs,
        )

    def text_flops(self):
        te = self.pipe.text_encoder
        ids = _ids(te, self.max_sequence_length)
        return count_flops(lambda: te(ids, attention_mask=torch.ones_like(ids)))

    def denoiser_call(self, resolution, guidance):
        tr = self.net()
        w, c = _where(tr), tr.config
        lat = self.latent(resolution, c.in_channels)
        L = self.max_sequence_length
        ehs = torch.zeros(1, L, c.caption_channels, **w)
        mask = torch.ones(1, L, **w)
        added = {"resolution": None, "aspect_ratio": None}
        if tr.use_additional_conditions:
            added = {"resolution": torch.full((1, 2), float(resolution), **w), "aspect_ratio": torch.ones(1, 1, **w)}
        t = torch.full((1,), 999, device=w["device"], dtype=torch.long)
        return lambda: tr(
            lat, encoder_hidden_states=ehs, encoder_attention_mask=mask, timestep=t, added_cond_kwargs=added
        )


class SanaAdapter(PixArtAdapter):
    """SanaPipeline: Gemma-2 (with SANA's default complex-human-instruction prefix, as a plain `pipe(prompt)`
    call uses it), the linear-attention SANA transformer, a deep-compression autoencoder. Resolution binning off.
    Its pipeline call, sequence window (default 300) and text FLOPs (the prompt window; the instruction prefix is
    not counted) are PixArt's."""

    family = "sana"

    def _chi(self):
        return _call_default(self.pipe, "complex_human_instruction", None)

    def encode(self, prompt, guidance):
        return self.pipe.encode_prompt(
            prompt,
            do_classifier_free_guidance=guidance > 1.0,
            negative_prompt="",
            num_images_per_prompt=1,
            device=self.device,
            clean_caption=False,
            max_sequence_length=self.max_sequence_length,
            complex_human_instruction=self._chi(),
        )

    def denoiser_call(self, resolution, guidance):
        tr = self.net()
        w, c = _where(tr), tr.config
        lat = self.latent(resolution, c.in_channels)
        L = self.max_sequence_length
        kw = {
            "encoder_hidden_states": torch.zeros(1, L, c.caption_channels, **w),
            "encoder_attention_mask": torch.ones(1, L, **w),
            "timestep": torch.full((1,), 999.0, **w),
        }
        if c.guidance_embeds:
            kw["guidance"] = torch.full((1,), float(guidance), **w)
        return lambda: tr(lat, **kw)


class SanaSprintAdapter(SanaAdapter):
    """SanaSprintPipeline: as SANA, but guidance is embedded (no unconditional half) and the SCM scheduler takes
    1-4 steps (its intermediate timestep applies to 2 steps only)."""

    family = "sana_sprint"
    cfg_doubles = False

    def encode(self, prompt, guidance):
        return self.pipe.encode_prompt(
            prompt,
            num_images_per_prompt=1,
            device=self.device,
            clean_caption=False,
            max_sequence_length=self.max_sequence_length,
            complex_human_instruction=self._chi(),
        )

    def generate(self, emb, seeds, gen):
        pe, pam = emb
        b = len(seeds)
        intermediate = _call_default(self.pipe, "intermediate_timesteps", 1.3) if gen["steps"] == 2 else None
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            prompt_attention_mask=pam.expand(b, -1),
            intermediate_timesteps=intermediate,
            clean_caption=False,
            use_resolution_binning=False,
            max_sequence_length=self.max_sequence_length,
        )


class DiTAdapter(Adapter):
    """DiTPipeline: class-conditional. The class's prompt must name one of the model's labels (id2label, each
    comma-separated synonym counts; case is ignored) or be the class id itself; it generates at its native
    resolution only. Classifier-free guidance (guidance > 1) runs the null class alongside."""

    family = "dit"

    def __init__(self, pipe, device=None):
        super().__init__(pipe, device)
        self.labels = getattr(pipe, "labels", None) or {}  # DiTPipeline's own table, from its id2label

    def native_resolution(self) -> int:
        return self.net().config.sample_size * autoencoder_facts(dict(self.pipe.vae.config))["scale"]

    def check(self, gen):
        native = self.native_resolution()
        if gen["resolution"] != native:
            raise ValueError(
                f"resolution {gen['resolution']}: this DiT generates at its native {native} px only. "
                f"Fix: generation.resolution: {native}."
            )

    def encode(self, prompt, guidance):
        label = dit_label_id(prompt, self.labels)
        if label is None:
            raise ValueError(
                f"prompt {prompt!r} is not a label of this class-conditional DiT. Fix: a per-class "
                f"prompt override naming one of its labels (or the class id)."
            )
        return label

    def generate(self, emb, seeds, gen):
        return self.pipe(
            class_labels=[emb] * len(seeds),
            guidance_scale=gen["guidance_scale"],
            generator=generators(seeds),
            num_inference_steps=gen["steps"],
            output_type="pt",
        ).images

    def denoiser_call(self, resolution, guidance):
        tr = self.net()
        w = _where(tr)
        lat = self.latent(resolution, tr.config.in_channels)
        t = torch.full((1,), 999, device=w["device"], dtype=torch.long)
        cls = torch.zeros(1, device=w["device"], dtype=torch.long)
        return lambda: tr(lat, timestep=t, class_labels=cls)


ADAPTERS = {
    a.family: a
    for a in (
        SDXLAdapter,
        SDAdapter,
        SD3Adapter,
        FluxAdapter,
        PixArtAdapter,
        SanaAdapter,
        SanaSprintAdapter,
        DiTAdapter,
    )
}


def family_of(pipe) -> str:
    """The family of a pipeline object, from its class (or the nearest supported base class)."""
    for cls in type(pipe).__mro__:
        if cls.__name__ in BY_PIPELINE:
            return BY_PIPELINE[cls.__name__].name
    return family_for_class(type(pipe).__name__, "the loaded pipeline").name  # raises, naming the supported ones


def adapter_for(pipe, device=None, family: str | None = None) -> Adapter:
    """The adapter of `pipe`'s family (from its class, or `family` when given); UnsupportedModel otherwise."""
    return ADAPTERS[family or family_of(pipe)](pipe, device)
