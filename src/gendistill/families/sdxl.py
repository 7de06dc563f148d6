"""SDXL (StableDiffusionXLPipeline; SDXL-Turbo, the paper's generator): two CLIP text encoders with pooled
embeddings, a "text_time" UNet, a KL autoencoder with 4 latent channels at 8x."""

from __future__ import annotations

from .base import Adapter, Family, count_flops, pooled_prompt_kwargs, token_ids, where


class SDXLAdapter(Adapter):
    denoiser = "unet"

    def encode(self, prompt, guidance):
        pe, npe, ppe, nppe = self.pipe.encode_prompt(
            prompt=prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=guidance > 1.0
        )
        return pe, npe, ppe, nppe

    def generate(self, emb, seeds, gen):
        return self._sample(seeds, gen, **pooled_prompt_kwargs(emb, len(seeds), gen["guidance_scale"]))

    def text_flops(self):
        te1, te2 = self.pipe.text_encoder, self.pipe.text_encoder_2
        ids = token_ids(te1, te1.config.max_position_embeddings)
        return count_flops(lambda: (te1(ids, output_hidden_states=True), te2(ids, output_hidden_states=True)))

    def denoiser_call(self, resolution, guidance):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        unet = self.net()
        w = where(unet)
        lat = self.latent(resolution, unet.config.in_channels)
        ehs = torch.zeros(1, 77, unet.config.cross_attention_dim, **w)
        add = {
            "text_embeds": torch.zeros(1, self.pipe.text_encoder_2.config.projection_dim, **w),
            "time_ids": torch.zeros(1, 6, **w),
        }
        return lambda: unet(lat, 999, encoder_hidden_states=ehs, added_cond_kwargs=add)


FAMILY = Family(
    name="sdxl",
    title="SDXL (SDXL-Turbo)",
    pipelines=("StableDiffusionXLPipeline",),
    example="stabilityai/sdxl-turbo",
    tiny_decoders="madebyollin/taesdxl",
    latent_channels=4,
    adapter=SDXLAdapter,
)
FAMILIES = (FAMILY,)
