"""PixArt-alpha / PixArt-Sigma (PixArtAlphaPipeline, PixArtSigmaPipeline): T5 with an attention mask, the PixArt
transformer on 2x2 latent patches, SD's (alpha) or SDXL's (Sigma) KL autoencoder. Resolution binning is off, so
the resolution asked is the one sampled."""

from __future__ import annotations

from .base import Family

FAMILY = Family(
    name="pixart",
    title="PixArt-alpha / PixArt-Sigma",
    pipelines=("PixArtAlphaPipeline", "PixArtSigmaPipeline"),
    example="PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
    tiny_decoders="madebyollin/taesd (alpha), madebyollin/taesdxl (Sigma)",
    latent_channels=4,
    tiny_patch_size=2,
)
FAMILIES = (FAMILY,)
