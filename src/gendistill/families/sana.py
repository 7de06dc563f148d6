"""SANA and SANA-Sprint (SanaPipeline, SanaSprintPipeline): Gemma-2 (with SANA's default complex-human-instruction
prefix, as a plain `pipe(prompt)` call uses it), the linear-attention SANA transformer, a deep-compression
autoencoder (AutoencoderDC, 32 latent channels at 32x). Resolution binning is off. Their pipeline call, sequence
window (default 300) and text FLOPs (the prompt window; the instruction prefix is not counted) are PixArt's.

SANA-Sprint embeds guidance in the model (no unconditional pass) and samples in 1-4 steps with the SCM scheduler
(its intermediate timestep applies to 2 steps only).
"""

from __future__ import annotations

from .base import Family, call_default, where
from .pixart import PixArtAdapter


class SanaAdapter(PixArtAdapter):
    def _chi(self):
        return call_default(self.pipe, "complex_human_instruction", None)

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
        import torch  # deferred: heavy, and the plan imports this module for its facts

        tr = self.net()
        w, c = where(tr), tr.config
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
        intermediate = call_default(self.pipe, "intermediate_timesteps", 1.3) if gen["steps"] == 2 else None
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


SANA = Family(
    name="sana",
    title="SANA",
    pipelines=("SanaPipeline",),
    example="Efficient-Large-Model/Sana_1600M_1024px_diffusers",
    tiny_decoders="",
    latent_channels=32,
    adapter=SanaAdapter,
    min_multiple=32,
)
SANA_SPRINT = Family(
    name="sana_sprint",
    title="SANA-Sprint",
    pipelines=("SanaSprintPipeline",),
    example="Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
    tiny_decoders="",
    latent_channels=32,
    adapter=SanaSprintAdapter,
    min_multiple=32,
    classifier_free_guidance=False,
)
FAMILIES = (SANA, SANA_SPRINT)
