"""SDXL (StableDiffusionXLPipeline; SDXL-Turbo, the paper's generator): two CLIP text encoders with pooled
embeddings, a "text_time" UNet, a KL autoencoder with 4 latent channels at 8x."""

from __future__ import annotations

from .base import Adapter, Family, count_flops, pooled_prompt_kwargs, token_ids, where
from .tiny import TURBO_SCHEDULE, clip_text_configs, kl_vae, latent_size, load_tokenizer
from .tokenizers import write_tokenizer_files


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


def build_tiny(s: dict):
    """SDXL-Turbo's classes: two CLIP text encoders (the second with projection), a "text_time" UNet, a KL VAE,
    Euler-ancestral with trailing timesteps."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, vocab_size = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_2, _ = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    cfg1, cfg2 = clip_text_configs(s["text_hidden"], s["text_layers"], vocab_size)
    uc = list(s["unet_channels"])
    time_dim = 8
    torch.manual_seed(s["seed"])
    unet = UNet2DConditionModel(
        sample_size=latent_size(s),
        in_channels=FAMILY.latent_channels,
        out_channels=FAMILY.latent_channels,
        block_out_channels=uc,
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(uc) - 1),
        up_block_types=["CrossAttnUpBlock2D"] * (len(uc) - 1) + ["UpBlock2D"],
        attention_head_dim=[2] * len(uc),
        use_linear_projection=True,
        cross_attention_dim=cfg1.hidden_size + cfg2.hidden_size,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=time_dim * 6 + cfg2.projection_dim,
        transformer_layers_per_block=1,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = kl_vae(s, FAMILY.latent_channels, 0.13025)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg1)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = CLIPTextModelWithProjection(cfg2)
    scheduler = EulerAncestralDiscreteScheduler(**TURBO_SCHEDULE)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )


FAMILY = Family(
    name="sdxl",
    title="SDXL (SDXL-Turbo)",
    pipelines=("StableDiffusionXLPipeline",),
    example="stabilityai/sdxl-turbo",
    tiny_decoders="madebyollin/taesdxl",
    latent_channels=4,
    adapter=SDXLAdapter,
    build_tiny=build_tiny,
    example_config="sdxl-turbo",
)
FAMILIES = (FAMILY,)
