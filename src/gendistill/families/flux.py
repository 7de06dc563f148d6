"""FLUX.1 (FluxPipeline; schnell, dev): CLIP (pooled) + T5, the FLUX transformer on 2x2 latent patches packed
into tokens, a KL autoencoder with 16 latent channels at 8x.

Guidance is embedded in guidance-distilled checkpoints (FLUX.1-dev; schnell ignores it): no classifier-free
guidance, one denoiser evaluation per step.
"""

from __future__ import annotations

from .base import Family

FAMILY = Family(
    name="flux",
    title="FLUX.1",
    pipelines=("FluxPipeline",),
    example="black-forest-labs/FLUX.1-schnell",
    tiny_decoders="madebyollin/taef1",
    latent_channels=16,
    latent_packing=2,
)
FAMILIES = (FAMILY,)
