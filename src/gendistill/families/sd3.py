"""Stable Diffusion 3 / 3.5 (StableDiffusion3Pipeline, their Turbo versions too): two CLIP text encoders with
projection and a T5 encoder, an MMDiT on 2x2 latent patches, a KL autoencoder with 16 latent channels at 8x."""

from __future__ import annotations

from .base import Adapter, Family, call_default, count_flops, pooled_prompt_kwargs, token_ids, where


class SD3Adapter(Adapter):
    @property
    def max_sequence_length(self) -> int:
        return call_default(self.pipe, "max_sequence_length", 256)

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
        return self._sample(
            seeds,
            gen,
            max_sequence_length=self.max_sequence_length,
            **pooled_prompt_kwargs(emb, len(seeds), gen["guidance_scale"]),
        )

    def text_flops(self):
        p = self.pipe
        clip = token_ids(p.text_encoder, 77)
        t5 = token_ids(p.text_encoder_3, self.max_sequence_length)
        return count_flops(
            lambda: (
                p.text_encoder(clip, output_hidden_states=True),
                p.text_encoder_2(clip, output_hidden_states=True),
                p.text_encoder_3(t5),
            )
        )

    def denoiser_call(self, resolution, guidance):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        tr = self.net()
        w, c = where(tr), tr.config
        lat = self.latent(resolution, c.in_channels)
        ehs = torch.zeros(1, 77 + self.max_sequence_length, c.joint_attention_dim, **w)
        pooled = torch.zeros(1, c.pooled_projection_dim, **w)
        t = torch.full((1,), 999.0, **w)
        return lambda: tr(hidden_states=lat, encoder_hidden_states=ehs, pooled_projections=pooled, timestep=t)


FAMILY = Family(
    name="sd3",
    title="Stable Diffusion 3 / 3.5",
    pipelines=("StableDiffusion3Pipeline",),
    example="stabilityai/stable-diffusion-3.5-large-turbo",
    tiny_decoders="madebyollin/taesd3",
    latent_channels=16,
    adapter=SD3Adapter,
    tiny_patch_size=2,
)
FAMILIES = (FAMILY,)
