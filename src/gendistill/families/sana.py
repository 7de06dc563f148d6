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
from .tiny import latent_size, load_tokenizer
from .tokenizers import write_gemma_tokenizer


class SanaAdapter(PixArtAdapter):
    def _chi(self):
        return call_default(self.pipe, "complex_human_instruction", None)

    def encode(self, prompt, guidance):
        return super().encode(prompt, guidance, complex_human_instruction=self._chi())

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
        intermediate = call_default(self.pipe, "intermediate_timesteps", 1.3) if gen["steps"] == 2 else None
        return self._sample_masked(seeds, gen, pe, pam, intermediate_timesteps=intermediate)


def build_tiny(s: dict, sprint: bool = False):
    """SANA (and SANA-Sprint): a Gemma-2 text encoder, the linear-attention SANA transformer, a deep-compression
    autoencoder (AutoencoderDC, 32 latent channels), flow DPM-Solver (Sprint: SCM, guidance embedded)."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        SanaPipeline,
        SanaSprintPipeline,
        SanaTransformer2DModel,
        SCMScheduler,
    )
    from transformers import Gemma2Config, Gemma2Model

    family = SANA_SPRINT if sprint else SANA
    tokenizer, vocab_size = load_tokenizer(write_gemma_tokenizer, "GemmaTokenizer")
    heads, head_dim, hidden = s["transformer_heads"], s["transformer_head_dim"], s["text_hidden"]
    torch.manual_seed(s["seed"])
    transformer = SanaTransformer2DModel(
        in_channels=family.latent_channels,
        out_channels=family.latent_channels,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        num_layers=s["transformer_layers"],
        num_cross_attention_heads=heads,
        cross_attention_head_dim=head_dim,
        cross_attention_dim=heads * head_dim,
        caption_channels=hidden,
        mlp_ratio=2.5,
        sample_size=latent_size(s),
        patch_size=family.tiny_patch_size,
        qk_norm="rms_norm_across_heads" if sprint else None,
        guidance_embeds=sprint,
    )
    vc = tuple(max(c, 32) for c in s["vae_channels"])  # DC-AE's shortcuts need widths that are multiples of 32
    torch.manual_seed(s["seed"] + 1)
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=family.latent_channels,
        attention_head_dim=8,
        encoder_block_types=("ResBlock",) * (len(vc) - 1) + ("EfficientViTBlock",),
        decoder_block_types=("ResBlock",) * (len(vc) - 1) + ("EfficientViTBlock",),
        encoder_block_out_channels=vc,
        decoder_block_out_channels=vc,
        encoder_layers_per_block=(1,) * len(vc),
        decoder_layers_per_block=(1,) * len(vc),
        encoder_qkv_multiscales=((),) * (len(vc) - 1) + ((5,),),
        decoder_qkv_multiscales=((),) * (len(vc) - 1) + ((5,),),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    torch.manual_seed(s["seed"] + 2)
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=s["text_layers"],
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=hidden // 2,
            max_position_embeddings=4096,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=2,
        )
    )
    if sprint:
        scheduler = SCMScheduler(num_train_timesteps=1000, prediction_type="trigflow", sigma_data=0.5)
        return SanaSprintPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
    scheduler = DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    return SanaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


def build_tiny_sprint(s: dict):
    return build_tiny(s, sprint=True)


SANA = Family(
    name="sana",
    title="SANA",
    pipelines=("SanaPipeline",),
    example="Efficient-Large-Model/Sana_1600M_1024px_diffusers",
    tiny_decoders="",
    latent_channels=32,
    adapter=SanaAdapter,
    build_tiny=build_tiny,
    min_multiple=32,
)  # no example config of its own: SANA-Sprint's stands for the pair
SANA_SPRINT = Family(
    name="sana_sprint",
    title="SANA-Sprint",
    pipelines=("SanaSprintPipeline",),
    example="Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
    tiny_decoders="",
    latent_channels=32,
    adapter=SanaSprintAdapter,
    build_tiny=build_tiny_sprint,
    min_multiple=32,
    classifier_free_guidance=False,
    example_config="sana-sprint",
)
FAMILIES = (SANA, SANA_SPRINT)
