"""PixArt-alpha / PixArt-Sigma (PixArtAlphaPipeline, PixArtSigmaPipeline): T5 with an attention mask, the PixArt
transformer on 2x2 latent patches, SD's (alpha) or SDXL's (Sigma) KL autoencoder. Resolution binning is off, so
the resolution asked is the one sampled."""

from __future__ import annotations

from .base import Adapter, Family, call_default, count_flops, token_ids, where
from .tiny import kl_vae, latent_size, load_tokenizer, t5_encoder
from .tokenizers import write_t5_tokenizer


class PixArtAdapter(Adapter):
    @property
    def max_sequence_length(self) -> int:
        return call_default(self.pipe, "max_sequence_length", 300)  # 120 for alpha, 300 for Sigma

    def encode(self, prompt, guidance, **family_kwargs):
        return self.pipe.encode_prompt(
            prompt,
            do_classifier_free_guidance=guidance > 1.0,
            negative_prompt="",
            num_images_per_prompt=1,
            device=self.device,
            clean_caption=False,
            max_sequence_length=self.max_sequence_length,
            **family_kwargs,
        )

    def generate(self, emb, seeds, gen):
        pe, pam, npe, npam = emb
        b = len(seeds)
        kwargs = {}
        if gen["guidance_scale"] > 1.0:
            kwargs = {
                "negative_prompt": None,
                "negative_prompt_embeds": npe.expand(b, -1, -1),
                "negative_prompt_attention_mask": npam.expand(b, -1),
            }
        return self._sample_masked(seeds, gen, pe, pam, **kwargs)

    def _sample_masked(self, seeds, gen, pe, pam, **family_kwargs):
        """`_sample` with T5-style prompt embeddings and their attention mask, at the resolution asked (binning
        off); PixArt's and SANA's pipelines alike."""
        b = len(seeds)
        return self._sample(
            seeds,
            gen,
            prompt_embeds=pe.expand(b, -1, -1),
            prompt_attention_mask=pam.expand(b, -1),
            clean_caption=False,
            use_resolution_binning=False,
            max_sequence_length=self.max_sequence_length,
            **family_kwargs,
        )

    def text_flops(self):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        te = self.pipe.text_encoder
        ids = token_ids(te, self.max_sequence_length)
        return count_flops(lambda: te(ids, attention_mask=torch.ones_like(ids)))

    def denoiser_call(self, resolution, guidance):
        import torch  # deferred: heavy, and the plan imports this module for its facts

        tr = self.net()
        w, c = where(tr), tr.config
        lat = self.latent(resolution, c.in_channels)
        L = self.max_sequence_length
        ehs = torch.zeros(1, L, c.caption_channels, **w)
        mask = torch.ones(1, L, **w)
        added = {"resolution": None, "aspect_ratio": None}
        if tr.use_additional_conditions:
            added = {"resolution": torch.full((1, 2), float(resolution), **w), "aspect_ratio": torch.ones(1, 1, **w)}
        t = torch.full((1,), 999, device=w["device"], dtype=torch.long)
        return lambda: tr(
            lat, encoder_hidden_states=ehs, encoder_attention_mask=mask, timestep=t, added_cond_kwargs=added
        )


def build_tiny(s: dict):
    """PixArt-Sigma: a T5 encoder, the PixArt transformer (adaLN-single, learned sigma), SDXL's KL VAE, DPM-Solver."""
    import torch  # deferred: heavy, and the plan imports this module for its facts
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer, t5_vocab = load_tokenizer(write_t5_tokenizer, "T5Tokenizer")
    heads, head_dim = s["transformer_heads"], s["transformer_head_dim"]
    torch.manual_seed(s["seed"])
    transformer = PixArtTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=FAMILY.latent_channels,
        out_channels=2 * FAMILY.latent_channels,  # learned sigma
        num_layers=s["transformer_layers"],
        cross_attention_dim=heads * head_dim,
        sample_size=latent_size(s),
        patch_size=FAMILY.tiny_patch_size,
        caption_channels=s["text_hidden"],
        norm_type="ada_norm_single",
        use_additional_conditions=False,
        interpolation_scale=1,
    )
    torch.manual_seed(s["seed"] + 1)
    vae = kl_vae(s, FAMILY.latent_channels, 0.13025)
    torch.manual_seed(s["seed"] + 2)
    text_encoder = t5_encoder(s["text_hidden"], s["text_layers"], t5_vocab)
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.0001, beta_end=0.02, beta_schedule="linear", prediction_type="epsilon"
    )
    return PixArtSigmaPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )


FAMILY = Family(
    name="pixart",
    title="PixArt-alpha / PixArt-Sigma",
    pipelines=("PixArtAlphaPipeline", "PixArtSigmaPipeline"),
    example="PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    tiny_decoders="madebyollin/taesd (alpha), madebyollin/taesdxl (Sigma)",
    latent_channels=4,
    adapter=PixArtAdapter,
    build_tiny=build_tiny,
    tiny_patch_size=2,
    example_config="pixart-sigma",
)
FAMILIES = (FAMILY,)
