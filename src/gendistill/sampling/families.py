"""The pipeline families the sampler supports, and the model facts the plan checks before any job.

A family is chosen from the pipeline's class: at plan time from `model_index.json`'s `_class_name` (this module
imports neither torch nor diffusers), when loading from the loaded pipeline's class (`adapters.adapter_for`).
Each family has one adapter in `adapters.py`: it encodes a class's prompt once, generates a batch from one seeded
CPU generator per image, and reports FLOPs per image.

The plan-time facts come from the model's JSON configs (a local directory, a cached hub snapshot, or the tiny
spec): the family, the autoencoder's latent channels and scale, the resolution multiple the pipeline accepts,
the native resolution of a class-conditional DiT and its labels.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    pipelines: tuple[str, ...]  # diffusers pipeline classes served by this family's adapter
    example: str  # a real checkpoint of the family
    tiny_decoders: str  # the published AutoencoderTiny weights that decode its latents ("" if none)
    conditioning: str = "text"  # "text" (the prompt) or "class" (the prompt names one of the model's labels)
    min_multiple: int = 8  # the pipeline's own check on height/width


FAMILIES: tuple[Family, ...] = (
    Family(
        "sdxl", "SDXL (SDXL-Turbo)", ("StableDiffusionXLPipeline",), "stabilityai/sdxl-turbo", "madebyollin/taesdxl"
    ),
    Family(
        "sd",
        "Stable Diffusion 1.x / 2.x (sd-turbo)",
        ("StableDiffusionPipeline",),
        "stabilityai/sd-turbo",
        "madebyollin/taesd",
    ),
    Family(
        "sd3",
        "Stable Diffusion 3 / 3.5",
        ("StableDiffusion3Pipeline",),
        "stabilityai/stable-diffusion-3.5-large-turbo",
        "madebyollin/taesd3",
    ),
    Family("flux", "FLUX.1", ("FluxPipeline",), "black-forest-labs/FLUX.1-schnell", "madebyollin/taef1"),
    Family(
        "pixart",
        "PixArt-alpha / PixArt-Sigma",
        ("PixArtAlphaPipeline", "PixArtSigmaPipeline"),
        "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
        "madebyollin/taesd (alpha), madebyollin/taesdxl (Sigma)",
    ),
    Family("sana", "SANA", ("SanaPipeline",), "Efficient-Large-Model/Sana_1600M_1024px_diffusers", "", min_multiple=32),
    Family(
        "sana_sprint",
        "SANA-Sprint",
        ("SanaSprintPipeline",),
        "Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers",
        "",
        min_multiple=32,
    ),
    Family(
        "dit",
        "DiT, class-conditional (ImageNet labels)",
        ("DiTPipeline",),
        "facebook/DiT-XL-2-256",
        "madebyollin/taesd",
        conditioning="class",
    ),
)
BY_NAME = {f.name: f for f in FAMILIES}
BY_PIPELINE = {p: f for f in FAMILIES for p in f.pipelines}


class UnsupportedModel(ValueError):
    """The model's pipeline class has no adapter; str(err) lists the supported ones."""


def supported_list() -> str:
    return "; ".join(f"{f.name}: {', '.join(f.pipelines)}" for f in FAMILIES)


def family_for_class(class_name: str, where: str = "the model") -> Family:
    """The family serving pipeline class `class_name`; UnsupportedModel (naming the supported ones) otherwise."""
    fam = BY_PIPELINE.get(class_name)
    if fam is None:
        raise UnsupportedModel(
            f"{where} is a {class_name or '(no _class_name)'}, which gendistill cannot sample from. Supported "
            f"pipeline families: {supported_list()}. Fix: point model.source at a checkpoint of one of these "
            f"(README, Supported generators)."
        )
    return fam


# ---- facts from JSON configs ---------------------------------------------------------------------------------


def _read(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


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


def dit_label_table(id2label: dict) -> dict[str, int]:
    """label text -> class id, as DiTPipeline builds it: every comma-separated synonym of a class names it."""
    table: dict[str, int] = {}
    for key, value in id2label.items():
        for label in str(value).split(","):
            table[label.strip()] = int(key)
    return dict(sorted(table.items()))


def dit_label_id(prompt: str, table: dict[str, int]) -> int | None:
    """The class id a prompt names: a label (exact, then ignoring case), or the id itself as digits."""
    p = prompt.strip()
    if p in table:
        return table[p]
    lower = {k.lower(): v for k, v in table.items()}
    if p.lower() in lower:
        return lower[p.lower()]
    if p.isdigit() and int(p) in set(table.values()):
        return int(p)
    return None


def facts_from_configs(
    family: Family, pipeline: str, vae: dict, denoiser: dict, id2label: dict | None, where: str
) -> dict:
    """The plan's facts about a model, from its autoencoder and denoiser configs (and a DiT's id2label)."""
    ae = autoencoder_facts(vae)
    patch = denoiser.get("patch_size", 1) or 1
    pack = 2 if family.name == "flux" else 1  # FLUX packs 2x2 latent patches into tokens
    step = ae["scale"] * patch * pack
    multiple = step * family.min_multiple // math.gcd(step, family.min_multiple)
    multiple = multiple * 8 // math.gcd(multiple, 8)  # the config schema asks for multiples of 8 anyway
    native = denoiser.get("sample_size", 0) * ae["scale"] if family.name == "dit" else None
    return {
        "family": family.name,
        "pipeline": pipeline,
        "where": where,
        "latent_channels": ae["latent_channels"],
        "scale": ae["scale"],
        "multiple": multiple,
        "native_resolution": native,
        "labels": dit_label_table(id2label) if id2label else None,
    }


def model_facts(root: Path, where: str) -> dict:
    """Facts of a diffusers pipeline directory (model_index.json and its components' config.json files).
    Raises UnsupportedModel for a pipeline class without an adapter."""
    root = Path(root)
    index = _read(root / "model_index.json") or {}
    pipeline = index.get("_class_name", "")
    family = family_for_class(pipeline, where)
    vae = _read(root / "vae" / "config.json") or {}
    denoiser = _read(root / "transformer" / "config.json") or _read(root / "unet" / "config.json") or {}
    return facts_from_configs(family, pipeline, vae, denoiser, index.get("id2label"), where)


def tiny_facts(spec: dict) -> dict:
    """Facts of the tiny random-weight pipeline `spec` will build (generator.build), without building it."""
    from ..generator.build import LATENT_CHANNELS, tiny_scale, tiny_spec

    s = tiny_spec(spec)
    family = BY_NAME[s["family"]]
    n = len(s["vae_channels"])
    vae = {"latent_channels": LATENT_CHANNELS[s["family"]], "block_out_channels": [0] * n}
    denoiser = {
        "patch_size": 2 if s["family"] in ("sd3", "pixart", "dit") else 1,
        "sample_size": s["sample_size"] // tiny_scale(s),
    }
    labels = dict(enumerate(s["labels"])) if s["family"] == "dit" else None
    return facts_from_configs(family, family.pipelines[-1], vae, denoiser, labels, f"model.tiny (family {s['family']})")


def decoder_facts(root: Path) -> dict | None:
    """Facts of an AutoencoderTiny directory (its config.json), or None when it has none."""
    config = _read(Path(root) / "config.json")
    return autoencoder_facts(config) if config else None


# ---- the checks --------------------------------------------------------------------------------------------


def generation_problems(facts: dict, gen: dict, classes: list, decoder: dict | None = None) -> list[str]:
    """What in the generation settings this model cannot do, each with its fix (empty when all is well).

    `classes` are the plan's classes (name, prompt); `decoder` the facts of the tiny decoder, when used."""
    problems = []
    fam, where, res = BY_NAME[facts["family"]], facts["where"], gen["resolution"]
    if fam.conditioning == "class":
        native = facts["native_resolution"]
        if native and res != native:
            problems.append(
                f"generation.resolution: {res}, but {where} is a class-conditional DiT that generates at its "
                f"native {native} px only. Fix: set generation.resolution: {native} (images are resized to the "
                f"dataset's size afterwards)."
            )
        table = facts["labels"]
        if not table and classes:
            problems.append(
                f"{where} is a class-conditional DiT without id2label in its model_index.json, so class "
                f"names cannot be mapped to its class ids. Fix: use a checkpoint that has them "
                f"(e.g. facebook/DiT-XL-2-256)."
            )
        else:
            bad = [c for c in classes if dit_label_id(c.prompt, table) is None]
            for c in bad[:8]:
                readable = c.name.replace("_", " ")
                close = difflib.get_close_matches(c.prompt.strip(), list(table), n=3, cutoff=0.6)
                if dit_label_id(readable, table) is not None:
                    hint = f" (its class name {readable!r} is one)"
                else:
                    hint = f" (did you mean {', '.join(repr(x) for x in close)}?)" if close else ""
                problems.append(
                    f"class {c.name!r}: its prompt {c.prompt!r} is not a label of {where}{hint}; a class-conditional "
                    f"model is given a class id, not a text. Fix: prompts.overrides: {{{c.name}: {{prompt: "
                    f'"<one of its labels, or the class id>"}}}}, or prompts.template: "{{name}}" when the '
                    f"dataset's names are the model's labels."
                )
            if len(bad) > 8:
                problems.append(f"... and {len(bad) - 8} more classes that name none of the model's labels.")
    elif res % facts["multiple"]:
        m = facts["multiple"]
        problems.append(
            f"generation.resolution: {res} is not a multiple of {m}, which {where} ({facts['pipeline']}) needs "
            f"(autoencoder scale x patch size). Fix: use {max(m, res - res % m)} or {res - res % m + m}."
        )
    if decoder is not None:
        if decoder["class"] and decoder["class"] != "AutoencoderTiny":
            problems.append(
                f"generation.tiny_decoder is a {decoder['class']}, not an AutoencoderTiny. Fix: point it "
                f"at a TAESD-family decoder ({fam.tiny_decoders or 'none is published for this family'})."
            )
        elif (decoder["latent_channels"], decoder["scale"]) != (facts["latent_channels"], facts["scale"]):
            problems.append(
                f"generation.tiny_decoder decodes {decoder['latent_channels']}-channel latents at {decoder['scale']}x, "
                f"but {where} makes {facts['latent_channels']}-channel latents at {facts['scale']}x. Fix: use the "
                f"tiny decoder made for this family ({fam.tiny_decoders or 'none is published for this family'}), "
                f"or generation.decoder: vae."
            )
    return problems
