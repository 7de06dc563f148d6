"""The tiny random-weight pipelines (demo and tests: `model.tiny`): their spec, and the components several families'
builders share. Each family module builds its own (`build_tiny`): a few-MB pipeline of the same component
classes as a real checkpoint of the family, tokenizers included, seeded so that the same spec gives the same
weights byte for byte."""

from __future__ import annotations

import tempfile
from pathlib import Path

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

TINY_DEFAULTS = {
    "family": "sdxl",
    "seed": 0,
    "unet_channels": [16, 32],
    "text_hidden": 16,
    "text_layers": 2,
    "vae_channels": [8, 16],
    "sample_size": 32,  # pixels; the latent is sample_size / 2 with two VAE blocks
    "transformer_layers": 2,  # transformer families (sd3, flux, pixart, sana, sana_sprint, dit)
    "transformer_heads": 2,
    "transformer_head_dim": 8,
    "labels": DIGIT_NAMES,  # dit: the class labels (id2label); the default matches the digits demo dataset
}


def tiny_spec(spec: dict | None = None) -> dict:
    """The full tiny spec: TINY_DEFAULTS overridden by `spec` (its family is looked up by `family_named`)."""
    return {**TINY_DEFAULTS, **(spec or {})}


def tiny_scale(spec: dict) -> int:
    """Pixels per latent pixel of the tiny pipeline's autoencoder."""
    return 2 ** (len(tiny_spec(spec)["vae_channels"]) - 1)


# The noise schedule of SD-Turbo's and SDXL-Turbo's schedulers: scaled-linear betas, trailing timesteps.
TURBO_SCHEDULE = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    steps_offset=1,
    timestep_spacing="trailing",
    prediction_type="epsilon",
)


def latent_size(s: dict) -> int:
    """The tiny pipeline's latent side (the denoiser's sample size)."""
    return s["sample_size"] // tiny_scale(s)


# ---- components several families' tiny builders share ------------------------------------------------------
# transformers and diffusers are imported inside: the plan imports this module (through the family modules).


def load_tokenizer(write, cls_name: str):
    """(tokenizer, vocabulary size): one of the project's offline tokenizers (tokenizers.py), loaded by its
    transformers class."""
    import transformers  # deferred: heavy

    with tempfile.TemporaryDirectory() as tmp:
        vocab_size = write(Path(tmp))
        return getattr(transformers, cls_name).from_pretrained(tmp), vocab_size


def clip_text_configs(hidden: int, layers: int, vocab_size: int):
    """Configs of a CLIP text encoder and of one with a projection (SDXL's second, SD3's two)."""
    from transformers import CLIPTextConfig  # deferred: heavy

    common = dict(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_attention_heads=2,
        num_hidden_layers=layers,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )
    return CLIPTextConfig(**common), CLIPTextConfig(**common, projection_dim=hidden)


def kl_vae(s: dict, latent_channels: int, scaling_factor: float, shift_factor: float | None = None):
    """A KL autoencoder (AutoencoderKL) with the spec's block widths; SD3/FLUX's (shift_factor set) have no
    quant convs, as the real ones."""
    from diffusers import AutoencoderKL  # deferred: heavy

    vc = list(s["vae_channels"])
    extra = (
        {}
        if shift_factor is None
        else {"shift_factor": shift_factor, "use_quant_conv": False, "use_post_quant_conv": False}
    )
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=vc,
        down_block_types=["DownEncoderBlock2D"] * len(vc),
        up_block_types=["UpDecoderBlock2D"] * len(vc),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=s["sample_size"],
        scaling_factor=scaling_factor,
        **extra,
    )


def t5_encoder(d_model: int, layers: int, vocab_size: int):
    """A T5 encoder (SD3's third text encoder, FLUX's second, PixArt's)."""
    from transformers import T5Config, T5EncoderModel  # deferred: heavy

    return T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=d_model,
            d_kv=d_model // 2,
            d_ff=2 * d_model,
            num_layers=layers,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=32,
            feed_forward_proj="gated-gelu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
