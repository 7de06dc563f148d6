"""Stable Diffusion 1.x / 2.x (StableDiffusionPipeline; sd-turbo): one CLIP text encoder, a UNet with
cross-attention, a KL autoencoder with 4 latent channels at 8x."""

from __future__ import annotations

from .base import Adapter, Family, count_flops, token_ids, where


class SDAdapter(Adapter):
    denoiser = "unet"

    def encode(self, prompt, guidance):
        return self.pipe.encode_prompt(prompt, self.device, 1, guidance > 1.0)

    def generate(self, emb, seeds, gen):
        pe, npe = emb
        b = len(seeds)
        kwargs = {"negative_prompt_embeds": npe.expand(b, -1, -1)} if gen["guidance_scale"] > 1.0 else {}
        return self._sample(seeds, gen, prompt_embeds=pe.expand(b, -1, -1), **kwargs)

    def text_flops(self):
        te = self.pipe.text_encoder
        return count_flops(lambda: te(token_ids(te, te.config.max_position_embeddings)))

    def denoiser_call(self, resolution, guidance):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        unet = self.net()
        lat = self.latent(resolution, unet.config.in_channels)
        ehs = torch.zeros(1, 77, unet.config.cross_attention_dim, **where(unet))
        return lambda: unet(lat, 999, encoder_hidden_states=ehs)


FAMILY = Family(
    name="sd",
    title="Stable Diffusion 1.x / 2.x (sd-turbo)",
    pipelines=("StableDiffusionPipeline",),
    example="stabilityai/sd-turbo",
    tiny_decoders="madebyollin/taesd",
    latent_channels=4,
    adapter=SDAdapter,
)
FAMILIES = (FAMILY,)
