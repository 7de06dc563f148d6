"""The tiny random-weight pipelines' spec (demo and tests: `model.tiny`), shared by every family's builder."""

from __future__ import annotations

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
