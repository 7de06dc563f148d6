"""What a generator family is: the facts the plan checks before any job, read from the model's JSON configs.

This module imports neither torch nor diffusers: the plan imports it (through the family modules) when Snakemake
builds the DAG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One diffusers pipeline family: what the plan and the sampler need to know about it."""

    name: str  # model.tiny.family, records.json's `family`
    title: str
    pipelines: tuple[str, ...]  # diffusers pipeline classes it serves; the tiny pipeline is of the last one
    example: str  # a real checkpoint of the family
    tiny_decoders: str  # the published AutoencoderTiny weights that decode its latents ("" if none)
    latent_channels: int  # of its real autoencoder; the tiny pipeline mirrors it
    conditioning: str = "text"  # "text" (the prompt) or "class" (the prompt names one of the model's labels)
    min_multiple: int = 8  # the pipeline's own check on height/width
    latent_packing: int = 1  # latent pixels per token side (FLUX packs 2x2 latent patches into one token)
    native_resolution_only: bool = False  # generates at its denoiser's sample size only (DiT)
    tiny_patch_size: int = 1  # the tiny pipeline's denoiser patch size


class UnsupportedModel(ValueError):
    """The model's pipeline class has no adapter; str(err) lists the supported ones."""


def autoencoder_facts(config: dict) -> dict:
    """Latent channels and pixels per latent pixel of an autoencoder config (AutoencoderKL, AutoencoderDC,
    AutoencoderTiny)."""
    if "decoder_block_out_channels" in config and "upsampling_scaling_factor" in config:  # AutoencoderTiny
        scale = config["upsampling_scaling_factor"] ** (len(config["decoder_block_out_channels"]) - 1)
    elif "encoder_block_out_channels" in config:  # AutoencoderDC
        scale = 2 ** (len(config["encoder_block_out_channels"]) - 1)
    else:  # AutoencoderKL
        scale = 2 ** (len(config.get("block_out_channels", [0] * 4)) - 1)
    return {"latent_channels": config.get("latent_channels", 4), "scale": scale, "class": config.get("_class_name", "")}


def facts_from_configs(family: Family, pipeline: str, vae: dict, denoiser: dict, where: str) -> dict:
    """The plan's facts about a model of `family`, from its autoencoder and denoiser configs: latent channels and
    scale, the resolution multiple it takes (autoencoder scale x patch size x packing, and the pipeline's own
    multiple), and the native resolution of a model that generates at that only. `labels` (a class-conditional
    model's label table) is filled in by the caller that has them."""
    ae = autoencoder_facts(vae)
    patch = denoiser.get("patch_size", 1) or 1
    step = ae["scale"] * patch * family.latent_packing
    multiple = math.lcm(step, family.min_multiple, 8)  # the config schema asks for multiples of 8 anyway
    native = denoiser.get("sample_size", 0) * ae["scale"] if family.native_resolution_only else None
    return {
        "family": family.name,
        "pipeline": pipeline,
        "where": where,
        "latent_channels": ae["latent_channels"],
        "scale": ae["scale"],
        "multiple": multiple,
        "native_resolution": native,
        "labels": None,
    }
