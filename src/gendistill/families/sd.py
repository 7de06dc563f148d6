"""Stable Diffusion 1.x / 2.x (StableDiffusionPipeline; sd-turbo): one CLIP text encoder, a UNet with
cross-attention, a KL autoencoder with 4 latent channels at 8x."""

from __future__ import annotations

from .base import Adapter, Family, count_flops, token_ids, where
from .tiny import TURBO_SCHEDULE, clip_text_configs, kl_vae, latent_size, load_tokenizer
from .tokenizers import write_tokenizer_files


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


def build_tiny(s: dict):
    """SD 1.x/2.x (sd-turbo): one CLIP text encoder, a UNet with cross-attention, a KL VAE, Euler (trailing)."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    cfg, _ = clip_text_configs(s["text_hidden"], s["text_layers"], vocab_size)
    uc = list(s["unet_channels"])
    torch.manual_seed(s["seed"])
    unet = UNet2DConditionModel(
        sample_size=latent_size(s),
        in_channels=FAMILY.latent_channels,
        out_channels=FAMILY.latent_channels,
        block_out_channels=uc,
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=["CrossAttnDownBlock2D"] * (len(uc) - 1) + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(uc) - 1),
        attention_head_dim=[2] * len(uc),
        use_linear_projection=True,
        cross_attention_dim=cfg.hidden_size,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = kl_vae(s, FAMILY.latent_channels, 0.18215)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg)
    scheduler = EulerDiscreteScheduler(**TURBO_SCHEDULE)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


FAMILY = Family(
    name="sd",
    title="Stable Diffusion 1.x / 2.x (sd-turbo)",
    pipelines=("StableDiffusionPipeline",),
    example="stabilityai/sd-turbo",
    tiny_decoders="madebyollin/taesd",
    latent_channels=4,
    adapter=SDAdapter,
    build_tiny=build_tiny,
    example_config="sd-turbo",
)
FAMILIES = (FAMILY,)
