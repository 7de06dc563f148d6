"""Tier 1: pipeline families - plan-time model checks (from the configs, before any job), the tiny decoder,
adapter choice, DiT label mapping and FLOPs per image on the tiny pipelines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG, deep_update

from gendistill.config import ConfigError
from gendistill.families import BY_NAME, FAMILIES, UnsupportedModel
from gendistill.families.dit import dit_label_id, dit_label_table
from gendistill.generator.build import build_tiny_decoder, build_tiny_pipeline
from gendistill.plan import PIXEL_KEYS, build_plan, load_spec


def plan_error(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        build_plan(cfg)
    return str(e.value)


def fake_model(root: Path, class_name: str, components: dict, extra: dict | None = None) -> Path:
    """A diffusers directory with model_index.json, each component's config.json and a weights file that holds no
    tensors (a whole safetensors header): enough for the plan, which reads configs and weight headers only."""
    index = {"_class_name": class_name, **(extra or {})}
    for name, (cls, config) in components.items():
        index[name] = ["diffusers", cls]
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(json.dumps({"_class_name": cls, **config}))
        (root / name / "diffusion_pytorch_model.safetensors").write_bytes(len(b"{}").to_bytes(8, "little") + b"{}")
    (root / "model_index.json").write_text(json.dumps(index))
    return root


KL_VAE = ("AutoencoderKL", {"latent_channels": 4, "block_out_channels": [128, 256, 512, 512]})


def test_unsupported_pipeline_fails_at_plan_time_listing_the_supported_ones(tmp_path):
    model = fake_model(tmp_path / "k", "KandinskyV22Pipeline", {"unet": ("UNet2DConditionModel", {})})
    msg = plan_error(deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(model)}}))
    assert "is a KandinskyV22Pipeline, which gendistill cannot sample from" in msg
    assert all(f.name in msg for f in FAMILIES) and "DiTPipeline" in msg and "Fix:" in msg
    from gendistill.families import adapter_for

    with pytest.raises(UnsupportedModel, match="Supported pipeline families"):
        adapter_for(object())  # a loaded pipeline of no supported class fails the same way


def test_resolution_must_fit_the_familys_autoencoder_and_patches(tmp_path):
    msg = plan_error(
        deep_update(TINY_CONFIG, {"model": {"tiny": {"family": "sana"}}, "generation": {"resolution": 48}})
    )
    assert "generation.resolution: 48 is not a multiple of 32" in msg and "Fix: use 32 or 64" in msg
    sd3 = fake_model(
        tmp_path / "sd3",
        "StableDiffusion3Pipeline",
        {
            "vae": ("AutoencoderKL", {"latent_channels": 16, "block_out_channels": [128, 256, 512, 512]}),
            "transformer": ("SD3Transformer2DModel", {"patch_size": 2}),
        },
    )
    cfg = deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(sd3)}, "generation": {"resolution": 520}})
    assert "520 is not a multiple of 16" in plan_error(cfg)
    build_plan(deep_update(cfg, {"generation": {"resolution": 512}}))


def test_class_conditional_dit_maps_class_names_to_its_labels_or_says_which_it_cannot(tmp_path):
    id2label = {"0": "tench, Tinca tinca", "1": "goldfish, Carassius auratus", "2": "great white shark"}
    dit = fake_model(
        tmp_path / "dit",
        "DiTPipeline",
        {"vae": KL_VAE, "transformer": ("Transformer2DModel", {"sample_size": 32, "patch_size": 2})},
        {"id2label": id2label},
    )
    cfg = deep_update(
        TINY_CONFIG,
        {
            "model": {"tiny": None, "source": str(dit)},
            "generation": {"resolution": 256},
            "prompts": {"overrides": {"zero": {"prompt": "Goldfish"}, "one": {"prompt": "2"}}},
        },
    )
    msg = plan_error(cfg)
    # class 'two' (prompt "a handwritten digit two") names no label; the other two map (case ignored, an id)
    assert "class 'two': its prompt 'a handwritten digit two' is not a label of model.source" in msg
    assert "'zero'" not in msg and "'one'" not in msg and "prompts.overrides: {two: {prompt:" in msg
    plan = build_plan(deep_update(cfg, {"prompts": {"overrides": {"two": {"prompt": "great white shark"}}}}))
    assert [c.prompt for c in plan.classes] == ["Goldfish", "2", "great white shark"]
    msg = plan_error(
        deep_update(cfg, {"generation": {"resolution": 512}, "prompts": {"overrides": {"two": {"prompt": "tench"}}}})
    )
    assert "native 256 px only. Fix: set generation.resolution: 256" in msg
    table = dit_label_table(id2label)
    assert table["Tinca tinca"] == 0 and dit_label_id("GREAT WHITE SHARK", table) == 2
    assert dit_label_id("7", table) is None
    msg = plan_error(deep_update(TINY_CONFIG, {"model": {"tiny": {"family": "dit"}}}))
    assert "(its class name 'zero' is one)" in msg and 'prompts.template: "{name}"' in msg


def test_tiny_decoder_must_be_given_and_fit_the_models_latents(tiny_model_dir, tmp_path):
    real = {"model": {"tiny": None, "source": tiny_model_dir}, "generation": {"decoder": "tiny"}}
    msg = plan_error(deep_update(TINY_CONFIG, real))
    assert "generation.tiny_decoder is not set" in msg and "madebyollin/taesdxl" in msg
    wrong = tmp_path / "taesd3"
    build_tiny_decoder({"family": "sd3"}).save_pretrained(wrong)  # 16-channel latents; the SDXL model makes 4
    msg = plan_error(deep_update(TINY_CONFIG, deep_update(real, {"generation": {"tiny_decoder": str(wrong)}})))
    assert "decodes 16-channel latents at 2x, but model.source" in msg and "makes 4-channel latents at 2x" in msg
    assert "no config.json" in plan_error(
        deep_update(TINY_CONFIG, deep_update(real, {"generation": {"tiny_decoder": str(tmp_path / "nothing")}}))
    )
    fits = str(Path(tiny_model_dir) / "tiny_decoder")
    plan = build_plan(deep_update(TINY_CONFIG, deep_update(real, {"generation": {"tiny_decoder": fits}})))
    assert plan.load_spec["decoder"] == "tiny" and plan.load_spec["tiny_decoder"] == fits
    # and when loading: the same check, against the loaded pipeline
    from gendistill.sampling.pipeline import use_tiny_decoder

    pipe = build_tiny_pipeline({"family": "sdxl"})
    with pytest.raises(ValueError, match="decodes 16-channel latents at 2x, but this StableDiffusionXLPipeline"):
        use_tiny_decoder(pipe, str(wrong), torch.float32)


def test_the_decoder_is_in_the_load_spec_only_when_used():
    cfg = build_plan(TINY_CONFIG).cfg
    assert "decoder" not in load_spec(cfg, "m") and {"decoder", "tiny_decoder"} <= set(PIXEL_KEYS)
    tiny = build_plan(deep_update(TINY_CONFIG, {"generation": {"decoder": "tiny"}}))
    assert tiny.load_spec["tiny_decoder"] == str(Path(tiny.model_source) / "tiny_decoder")
    assert re.search(r"tiny-sdxl-[0-9a-f]{10}$", tiny.model_source)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(BY_NAME))
def test_flops_per_image_on_the_tiny_pipelines(family):
    """Each adapter counts its components: the denoiser and decoder grow with the resolution, guidance > 1 doubles
    the evaluations of families with classifier-free guidance, and the tiny decoder costs less than the VAE."""
    from gendistill.families import adapter_for

    pipe = build_tiny_pipeline({"family": family})
    a = adapter_for(pipe)
    small, big = a.flops(32), a.flops(64, steps=2, guidance=3.0)
    assert small["denoiser_per_eval"] > 0 and big["denoiser_per_eval"] > small["denoiser_per_eval"]
    assert big["decoder"] > small["decoder"] > 0
    assert big["evals_per_image"] == (4 if BY_NAME[family].classifier_free_guidance else 2)
    assert big["per_image"] == big["denoiser_per_eval"] * big["evals_per_image"] + big["decoder"]
    assert (small["text_per_class"] > 0) == (family != "dit")
    pipe.vae = build_tiny_decoder({"family": family})
    assert 0 < a.flops(32)["decoder"] < small["decoder"]


def test_example_model_configs_are_valid_and_fit_their_architectures():
    """Each family's example config (configs/models/<stem>.yaml), merged over config.yaml as the README shows:
    schema-valid, of that family, and its resolution and tiny decoder fit the architecture of the checkpoint it
    names (benchmarks/model_configs/<stem>/). test_registries checks that every example config is a family's."""
    import yaml
    from conftest import REPO

    from gendistill.config import validate_schema
    from gendistill.families.facts import decoder_facts, generation_problems, model_facts

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    for family in [f for f in FAMILIES if f.example_config]:
        path = REPO / "configs" / "models" / f"{family.example_config}.yaml"
        cfg = validate_schema(deep_update(base, yaml.safe_load(path.read_text())))
        g = cfg["generation"]
        arch = REPO / "benchmarks" / "model_configs"
        facts = model_facts(arch / family.example_config, path.name)
        decoder = decoder_facts(arch / g["tiny_decoder"].split("/")[-1]) if g["tiny_decoder"] else None
        assert generation_problems(facts, g, [], decoder) == [], path.name
        assert facts["family"] == family.name and cfg["model"]["source"] == family.example, path.name
