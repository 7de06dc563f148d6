"""SANA and SANA-Sprint (SanaPipeline, SanaSprintPipeline): Gemma-2, the linear-attention SANA transformer, a
deep-compression autoencoder (AutoencoderDC, 32 latent channels at 32x). Resolution binning is off.

SANA-Sprint embeds guidance in the model (no unconditional pass) and samples in 1-4 steps with the SCM scheduler.
"""

from __future__ import annotations

from .base import Family

SANA = Family(
    name="sana",
    title="SANA",
    pipelines=("SanaPipeline",),
    example="Efficient-Large-Model/Sana_1600M_1024px_diffusers",
    tiny_decoders="",
    latent_channels=32,
    min_multiple=32,
)
SANA_SPRINT = Family(
    name="sana_sprint",
    title="SANA-Sprint",
    pipelines=("SanaSprintPipeline",),
    example="Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
    tiny_decoders="",
    latent_channels=32,
    min_multiple=32,
)
FAMILIES = (SANA, SANA_SPRINT)
