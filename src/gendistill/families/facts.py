"""The plan's facts about a model, read from its JSON configs (a local directory, a cached hub snapshot, or the
tiny spec) before any job, and what its family cannot do with the run's generation settings."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from . import BY_NAME, family_for_class, family_named
from .base import autoencoder_facts, facts_from_configs
from .dit import dit_label_id, dit_label_table
from .tiny import tiny_scale, tiny_spec


def _read(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def model_facts(root: Path, where: str) -> dict:
    """Facts of a diffusers pipeline directory (model_index.json and its components' config.json files).
    Raises UnsupportedModel for a pipeline class without an adapter."""
    root = Path(root)
    index = _read(root / "model_index.json") or {}
    pipeline = index.get("_class_name", "")
    family = family_for_class(pipeline, where)
    vae = _read(root / "vae" / "config.json") or {}
    denoiser = _read(root / "transformer" / "config.json") or _read(root / "unet" / "config.json") or {}
    facts = facts_from_configs(family, pipeline, vae, denoiser, where)
    id2label = index.get("id2label")
    return {**facts, "labels": dit_label_table(id2label) if id2label else None}


def tiny_facts(spec: dict) -> dict:
    """Facts of the tiny random-weight pipeline `spec` will build (generator.build), without building it."""
    s = tiny_spec(spec)
    family = family_named(s["family"])
    vae = {"latent_channels": family.latent_channels, "block_out_channels": [0] * len(s["vae_channels"])}
    denoiser = {"patch_size": family.tiny_patch_size, "sample_size": s["sample_size"] // tiny_scale(s)}
    where = f"model.tiny (family {s['family']})"
    facts = facts_from_configs(family, family.pipelines[-1], vae, denoiser, where)
    id2label = dict(enumerate(s["labels"])) if family.conditioning == "class" else None
    return {**facts, "labels": dit_label_table(id2label) if id2label else None}


def decoder_facts(root: Path) -> dict | None:
    """Facts of an AutoencoderTiny directory (its config.json), or None when it has none."""
    config = _read(Path(root) / "config.json")
    return autoencoder_facts(config) if config else None


def generation_problems(facts: dict, gen: dict, classes: list, decoder: dict | None = None) -> list[str]:
    """What in the generation settings this model cannot do, each with its fix (empty when all is well).

    `classes` are the plan's classes (name, prompt); `decoder` the facts of the tiny decoder, when used."""
    problems = []
    fam, where, res = BY_NAME[facts["family"]], facts["where"], gen["resolution"]
    if fam.native_resolution_only:
        native = facts["native_resolution"]
        if native and res != native:
            problems.append(
                f"generation.resolution: {res}, but {where} is a class-conditional DiT that generates at its "
                f"native {native} px only. Fix: set generation.resolution: {native} (images are resized to the "
                f"dataset's size afterwards)."
            )
    elif res % facts["multiple"]:
        m = facts["multiple"]
        problems.append(
            f"generation.resolution: {res} is not a multiple of {m}, which {where} ({facts['pipeline']}) needs "
            f"(autoencoder scale x patch size). Fix: use {max(m, res - res % m)} or {res - res % m + m}."
        )
    if fam.conditioning == "class":
        problems += _label_problems(facts["labels"], classes, where)
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


def _label_problems(table: dict | None, classes: list, where: str) -> list[str]:
    """The classes a class-conditional model cannot map to one of its labels, each with its fix."""
    if not table:
        if not classes:
            return []
        return [
            f"{where} is a class-conditional DiT without id2label in its model_index.json, so class "
            f"names cannot be mapped to its class ids. Fix: use a checkpoint that has them "
            f"(e.g. facebook/DiT-XL-2-256)."
        ]
    problems = []
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
    return problems
