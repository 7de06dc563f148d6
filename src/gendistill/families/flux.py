"""FLUX.1 (FluxPipeline; schnell, dev): CLIP (pooled) + T5, the FLUX transformer on 2x2 latent patches packed
into tokens, a KL autoencoder with 16 latent channels at 8x.

guidance_scale is the embedded guidance of guidance-distilled checkpoints (FLUX.1-dev); schnell has no guidance
embedding and ignores it. No classifier-free guidance (one denoiser evaluation per step). The T5 window is 256
tokens for schnell (its model card), 512 for guidance-embedded models.
"""

from __future__ import annotations

from .base import Adapter, Family, autoencoder_facts, count_flops, token_ids, where


class FluxAdapter(Adapter):
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
                p.text_encoder(token_ids(p.text_encoder, 77)),
                p.text_encoder_2(token_ids(p.text_encoder_2, self.max_sequence_length)),
            )
        )

    def denoiser_call(self, resolution, guidance):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        tr = self.net()
        w, c = where(tr), tr.config
        n = resolution // autoencoder_facts(dict(self.pipe.vae.config))["scale"] // self.family.latent_packing
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


FAMILY = Family(
    name="flux",
    title="FLUX.1",
    pipelines=("FluxPipeline",),
    example="black-forest-labs/FLUX.1-schnell",
    tiny_decoders="madebyollin/taef1",
    latent_channels=16,
    adapter=FluxAdapter,
    latent_packing=2,
    classifier_free_guidance=False,
)
FAMILIES = (FAMILY,)
