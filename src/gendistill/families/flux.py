"""FLUX.1 (FluxPipeline; schnell, dev): CLIP (pooled) + T5, the FLUX transformer on 2x2 latent patches packed
into tokens, a KL autoencoder with 16 latent channels at 8x.

guidance_scale is the embedded guidance of guidance-distilled checkpoints (FLUX.1-dev); schnell has no guidance
embedding and ignores it. No classifier-free guidance (one denoiser evaluation per step). The T5 window is 256
tokens for schnell (its model card), 512 for guidance-embedded models.
"""

from __future__ import annotations

from .base import Adapter, Family, autoencoder_facts, count_flops, token_ids, where
from .tiny import clip_text_configs, kl_vae, load_tokenizer, t5_encoder
from .tokenizers import write_t5_tokenizer, write_tokenizer_files


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


def build_tiny(s: dict):
    """FLUX.1-schnell: a CLIP text encoder (pooled) and a T5 encoder, the FLUX transformer (double and single
    stream blocks, no guidance embedding), a 16-channel VAE, flow Euler without dynamic shifting."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_2, t5_vocab = load_tokenizer(write_t5_tokenizer, "T5Tokenizer")
    cfg, _ = clip_text_configs(s["text_hidden"], s["text_layers"], vocab_size)
    head_dim = s["transformer_head_dim"]
    torch.manual_seed(s["seed"])
    transformer = FluxTransformer2DModel(
        patch_size=FAMILY.tiny_patch_size,
        in_channels=FAMILY.latent_channels * FAMILY.latent_packing**2,  # 2x2 latent patches packed per token
        num_layers=s["transformer_layers"],
        num_single_layers=s["transformer_layers"],
        attention_head_dim=head_dim,
        num_attention_heads=s["transformer_heads"],
        joint_attention_dim=s["text_hidden"],
        pooled_projection_dim=cfg.hidden_size,
        guidance_embeds=False,
        axes_dims_rope=(head_dim // 4, head_dim // 4, head_dim // 2),
    )
    torch.manual_seed(s["seed"] + 1)
    vae = kl_vae(s, FAMILY.latent_channels, 0.3611, 0.1159)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModel(cfg)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = t5_encoder(s["text_hidden"], s["text_layers"], t5_vocab)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


FAMILY = Family(
    name="flux",
    title="FLUX.1",
    pipelines=("FluxPipeline",),
    example="black-forest-labs/FLUX.1-schnell",
    tiny_decoders="madebyollin/taef1",
    latent_channels=16,
    adapter=FluxAdapter,
    build_tiny=build_tiny,
    latent_packing=2,
    classifier_free_guidance=False,
    example_config="flux.1-schnell",
)
FAMILIES = (FAMILY,)
