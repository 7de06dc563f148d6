"""Stable Diffusion 3 / 3.5 (StableDiffusion3Pipeline, their Turbo versions too): two CLIP text encoders with
projection and a T5 encoder, an MMDiT on 2x2 latent patches, a KL autoencoder with 16 latent channels at 8x."""

from __future__ import annotations

from .base import Adapter, Family, call_default, count_flops, pooled_prompt_kwargs, token_ids, where
from .tiny import clip_text_configs, kl_vae, latent_size, load_tokenizer, t5_encoder
from .tokenizers import write_t5_tokenizer, write_tokenizer_files


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


def build_tiny(s: dict):
    """SD3 / SD3.5: two CLIP encoders with projection and a T5 encoder, an MMDiT, a 16-channel VAE, flow Euler."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer, vocab_size = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_2, _ = load_tokenizer(write_tokenizer_files, "CLIPTokenizer")
    tokenizer_3, t5_vocab = load_tokenizer(write_t5_tokenizer, "T5Tokenizer")
    _, cfg = clip_text_configs(s["text_hidden"], s["text_layers"], vocab_size)
    joint = 2 * s["text_hidden"]  # T5 width >= the two CLIP widths together (SD3 pads the CLIP states to it)
    heads, head_dim = s["transformer_heads"], s["transformer_head_dim"]
    torch.manual_seed(s["seed"])
    transformer = SD3Transformer2DModel(
        sample_size=latent_size(s),
        patch_size=FAMILY.tiny_patch_size,
        in_channels=FAMILY.latent_channels,
        out_channels=FAMILY.latent_channels,
        num_layers=s["transformer_layers"],
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=joint,
        caption_projection_dim=heads * head_dim,
        pooled_projection_dim=2 * cfg.projection_dim,
        pos_embed_max_size=4 * latent_size(s),
        qk_norm="rms_norm",
    )
    torch.manual_seed(s["seed"] + 1)
    vae = kl_vae(s, FAMILY.latent_channels, 1.5305, 0.0609)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = CLIPTextModelWithProjection(cfg)
    torch.manual_seed(s["seed"] + 3)
    text_encoder_2 = CLIPTextModelWithProjection(cfg)
    torch.manual_seed(s["seed"] + 4)
    text_encoder_3 = t5_encoder(joint, s["text_layers"], t5_vocab)
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )


FAMILY = Family(
    name="sd3",
    title="Stable Diffusion 3 / 3.5",
    pipelines=("StableDiffusion3Pipeline",),
    example="stabilityai/stable-diffusion-3.5-large-turbo",
    tiny_decoders="madebyollin/taesd3",
    latent_channels=16,
    adapter=SD3Adapter,
    build_tiny=build_tiny,
    tiny_patch_size=2,
    example_config="sd3.5-large-turbo",
)
FAMILIES = (FAMILY,)
