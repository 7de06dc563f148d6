"""The pipeline's memory, estimated before it is loaded (gendistill.pipeline_memory), and the refusals built on it:
at plan time when the sample jobs run on this machine's CPU, at load otherwise. Fake models whose safetensors
headers claim full-size tensors: the estimate reads only the headers, and a sparse file as long as its header says
passes the plan's weight check without taking any disk."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, deep_update, run_snakemake

from gendistill import pipeline_memory as pm
from gendistill.plan import build_plan, sampling_problems_here

GIB = 2**30
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"
SDXL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
}


def write_weights(path: Path, tensors: dict[str, tuple[str, list[int]]], whole: bool = True) -> None:
    """A safetensors file with these (dtype, shape) tensors: its header, then (whole) a sparse hole as long as the
    header says, so the file passes the weight check and takes no disk."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = pm.DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        if whole:
            f.truncate(8 + len(raw) + offset)


def fake_sdxl(root: Path, unet_elements: int, dtype: str = "F16", force_upcast: bool = True) -> Path:
    """A StableDiffusionXLPipeline directory whose UNet has `unet_elements` parameters (plus small others)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps(SDXL_INDEX))
    write_weights(root / "unet/diffusion_pytorch_model.safetensors", {"w": (dtype, [unet_elements])})
    (root / "unet/config.json").write_text(json.dumps({"block_out_channels": [320, 640, 1280]}))
    write_weights(
        root / "vae/diffusion_pytorch_model.safetensors", {"w": (dtype, [1000, 1000]), "steps": ("I64", [10])}
    )
    vae = {"block_out_channels": [128, 256, 512, 512], "force_upcast": force_upcast, "latent_channels": 4}
    (root / "vae/config.json").write_text(json.dumps(vae))
    write_weights(root / "text_encoder/model.safetensors", {"w": (dtype, [2_000_000])})
    for name in ("tokenizer", "scheduler"):
        (root / name).mkdir(exist_ok=True)
    return root


def test_weights_in_the_load_dtype(tmp_path):
    root = fake_sdxl(tmp_path / "m", 10_000_000)
    f32 = pm.estimate(root, "float32", 0, 0)
    bf16 = pm.estimate(root, "bfloat16", 0, 0)
    # float16 files loaded in float32 take twice their size; integer tensors keep theirs (10 x int64)
    assert f32.components == {"unet": 40_000_000, "vae": 4_000_080, "text_encoder": 8_000_000}
    assert bf16.components == {"unet": 20_000_000, "vae": 2_000_080, "text_encoder": 4_000_000}
    unet_file = (root / "unet/diffusion_pytorch_model.safetensors").stat().st_size  # the largest component's file
    assert f32.overhead == bf16.overhead == pm.FIXED_OVERHEAD + unet_file
    assert f32.activations == 0 and f32.total == f32.weights + f32.overhead


def test_vae_upcast_and_vae_dtype(tmp_path):
    root = fake_sdxl(tmp_path / "m", 1000)
    # an fp16 pipeline decodes a force_upcast VAE in float32 (diffusers casts it for the decode)
    assert pm.estimate(root, "float16", 0, 0).components["vae"] == 4_000_080
    assert (
        pm.estimate(fake_sdxl(tmp_path / "n", 1000, force_upcast=False), "float16", 0, 0).components["vae"] == 2_000_080
    )
    assert pm.estimate(root, "float16", 0, 0, vae_dtype="bfloat16").components["vae"] == 2_000_080
    assert pm.estimate(root, "bfloat16", 0, 0, vae_dtype="float32").components["vae"] == 4_000_080


def test_load_transient_only_for_files_converted(tmp_path):
    """from_pretrained maps a component's file while it copies its tensors into the load dtype (the peak measured
    above the loaded pipeline by about that file); a file already in the load dtype is used in place."""
    f16 = fake_sdxl(tmp_path / "f16", 100_000_000)
    bf16 = fake_sdxl(tmp_path / "bf16", 100_000_000, dtype="BF16")
    unet_file = (f16 / "unet/diffusion_pytorch_model.safetensors").stat().st_size
    assert pm.estimate(f16, "bfloat16", 0, 0).overhead == pm.FIXED_OVERHEAD + unet_file
    assert pm.estimate(f16, "float16", 0, 0, vae_dtype="float16").overhead == pm.FIXED_OVERHEAD
    assert pm.estimate(bf16, "bfloat16", 0, 0).overhead == pm.FIXED_OVERHEAD


def test_variant_files_and_bin(tmp_path):
    root = fake_sdxl(tmp_path / "m", 1000)
    write_weights(root / "unet/diffusion_pytorch_model.fp16.safetensors", {"w": ("F16", [5000])})
    assert pm.estimate(root, "float16", 0, 0).components["unet"] == 2000  # the plain file, as diffusers loads it
    assert pm.estimate(root, "float16", 0, 0, variant="fp16").components["unet"] == 10_000
    (root / "text_encoder/model.safetensors").unlink()
    (root / "text_encoder/pytorch_model.bin").write_bytes(b"\0" * 400)  # a .bin: 4-byte elements, from its size
    assert pm.estimate(root, "bfloat16", 0, 0).components["text_encoder"] == 200


def test_activations_grow_with_batch_resolution_and_guidance(tmp_path):
    root = fake_sdxl(tmp_path / "m", 1000)
    one = pm.estimate(root, "float32", 512, 1).activations
    assert one == pm.DECODER_MAPS * 128 * 512**2 * 4 + pm.DENOISER_MAPS * 64**2 * 320 * 4
    assert pm.estimate(root, "float32", 512, 8).activations == 8 * one
    assert pm.estimate(root, "float32", 256, 1).activations * 4 == one
    assert pm.estimate(root, "bfloat16", 512, 1).activations * 2 == one
    assert pm.estimate(root, "float32", 512, 1, guidance=5.0).activations > one
    tiny = pm.estimate(root, "float32", 512, 1, decoder="tiny").activations  # 64 channels at full resolution
    assert tiny == one - pm.DECODER_MAPS * (128 - 64) * 512**2 * 4


def test_memory_problem_names_figures_and_fixes(tmp_path):
    root = fake_sdxl(tmp_path / "m", 3_000_000_000)  # a 3 B-parameter UNet: 11.2 GiB in float32
    gen = {"dtype": "auto", "resolution": 512, "batch_size": "auto", "guidance_scale": 0.0}
    msg = pm.memory_problem(root, "models/big", gen, "cpu", (8 * GIB, "MemAvailable"))
    est = pm.estimate(root, "float32", 512, 8)  # auto on the CPU: float32, batch 8
    assert msg.startswith(f"model.source: models/big needs about {est.total / GIB:.1f} GiB in float32"), msg
    assert "unet 11.2" in msg and "batch of 8 at 512 px" in msg and "8.0 GiB of host memory available" in msg
    for fix, alt in [
        ("generation.dtype: bfloat16", pm.estimate(root, "bfloat16", 512, 8)),
        ("generation.batch_size: 1", pm.estimate(root, "float32", 512, 1)),
        (
            "generation.decoder: tiny (with generation.tiny_decoder)",
            pm.estimate(root, "float32", 512, 8, decoder="tiny"),
        ),
    ]:
        assert f"{fix} (about {alt.total / GIB:.1f} GiB)" in msg, msg
    assert "limits.check_memory: false" in msg
    assert pm.memory_problem(root, "m", gen, "cpu", (32 * GIB, "MemAvailable")) is None
    assert pm.memory_problem(root, "m", gen, "cpu", None) is None  # nothing known: nothing refused
    small = {**gen, "dtype": "bfloat16", "batch_size": 1, "resolution": 128}
    # 5.6 GiB of weights, the 5.6 GiB float16 file mapped while it is converted, the process
    assert pm.memory_problem(root, "m", small, "cpu", (13 * GIB, "x")) is None
    assert "needs about 12.2 GiB in bfloat16" in pm.memory_problem(root, "m", small, "cpu", (12 * GIB, "x"))


def test_available_bytes_reads_meminfo():
    have, source = pm.available_bytes()
    assert have > 0 and source.startswith(("MemAvailable", "the cgroup"))


def huge_model(tmp_path) -> Path:
    """A local model whose headers claim a 1 T-parameter UNet (2 TB in float16): more than any test machine has;
    its file is sparse, so it passes the plan's weight check and takes no disk."""
    return fake_sdxl(tmp_path / "huge", 2**40)


def huge_config(tmp_path, **generation) -> dict:
    gen = {"device": "cpu", "dtype": "bfloat16", **generation}
    return deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(huge_model(tmp_path))}, "generation": gen})


def test_plan_refuses_a_model_larger_than_this_machine(tmp_path):
    plan = build_plan(huge_config(tmp_path))  # the weight check passes: the files are as long as their headers
    (problem,) = sampling_problems_here(plan)
    assert "needs about 4097.0 GiB in bfloat16" in problem and "of host memory available" in problem, problem
    off = build_plan(deep_update(huge_config(tmp_path), {"limits": {"check_memory": False}}))
    assert sampling_problems_here(off) == []
    assert sampling_problems_here(plan, sampler_running=True) == []  # its model is already in memory
    assert sampling_problems_here(build_plan(huge_config(tmp_path, device="cuda"))) == []  # checked at load


def test_float16_with_auto_device_on_a_cpu_machine(tmp_path, monkeypatch):
    monkeypatch.setattr("gendistill.plan.gpu_visible", lambda: False)
    cfg = deep_update(huge_config(tmp_path, device="auto", dtype="float16"), {"limits": {"check_memory": False}})
    (problem,) = sampling_problems_here(build_plan(cfg))
    assert "float16 on the CPU" in problem and "generation.dtype: bfloat16" in problem, problem
    monkeypatch.setattr("gendistill.plan.gpu_visible", lambda: True)
    assert sampling_problems_here(build_plan(cfg)) == []


@pytest.mark.workflow
def test_dry_run_refuses_before_any_job(tmp_path):
    """`snakemake -n` on this machine (a local executor) stops with the figure, before any job."""
    proc = run_snakemake(tmp_path / "run", huge_config(tmp_path), "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "this machine cannot sample this run (nothing was started)" in out, out[-3000:]
    assert "needs about 4097.0 GiB" in out and "limits.check_memory: false" in out, out[-3000:]
    assert "batch_size: 1" not in out  # a fix that would not lower the figure is not offered


def test_load_refuses_before_from_pretrained(tmp_path, monkeypatch):
    """The sampler's own check, for where the plan cannot know the device (a SLURM node, a GPU)."""
    from gendistill.sampling import pipeline

    monkeypatch.setattr(pipeline, "available_bytes", lambda: (4 * GIB, "MemAvailable"))
    root = fake_sdxl(tmp_path / "m", 2_000_000_000)
    with pytest.raises(pipeline.DeviceMemoryError) as e:
        pipeline.load_pipeline(str(root), None, "cpu", pipeline.torch.float32)
    msg = str(e.value)
    need, bf16 = (pm.estimate(root, dtype, 0, 0).total / GIB for dtype in ("float32", "bfloat16"))
    assert f"needs about {need:.1f} GiB" in msg and "4.0 GiB are MemAvailable" in msg, msg
    assert f"bfloat16 (about {bf16:.1f} GiB)" in msg, msg


def test_fixes_follow_the_estimate_for_float32_weights(tmp_path):
    """Issue 31, item 5: weights stored in float32 (a 7 B UNet, 26 GiB). Loaded in bfloat16 the float32 file is read
    while it is converted, so bfloat16 alone is estimated above float32 and was the only dtype fix considered: the
    plan offered nothing but more memory. The fixes follow the estimate: bfloat16 alone is not offered, bfloat16 with
    the weights saved in bfloat16 is (no file to convert), the tiny decoder and batch size 1 where the activations
    are large, and all of them together, each with its figure; a bfloat16 run on the float32 files is offered the
    weights saved in bfloat16."""
    root = fake_sdxl(tmp_path / "m", 7_000_000_000, dtype="F32")
    have = (20 * GIB, "MemAvailable")
    f32, bf16 = pm.estimate(root, "float32", 512, 8), pm.estimate(root, "bfloat16", 512, 8)
    assert bf16.total > f32.total and bf16.converted == (root / UNET_FILE).stat().st_size and f32.converted == 0
    gen = {"dtype": "auto", "resolution": 512, "batch_size": "auto", "guidance_scale": 0.0}
    msg = pm.memory_problem(root, "m", gen, "cpu", have)
    saved = pm.stored_in_load_dtype(bf16)
    tiny = pm.estimate(root, "float32", 512, 8, decoder="tiny")
    together = pm.stored_in_load_dtype(pm.estimate(root, "bfloat16", 512, 1, decoder="tiny"))
    assert "generation.dtype: bfloat16 (" not in msg, msg
    assert "generation.dtype: bfloat16 with the weights saved in bfloat16 (once, " in msg, msg
    assert f"(about {saved.total / GIB:.1f} GiB)" in msg, msg
    assert f"generation.decoder: tiny (with generation.tiny_decoder) (about {tiny.total / GIB:.1f} GiB)" in msg, msg
    assert f"all of these together (about {together.total / GIB:.1f} GiB, fits)" in msg, msg
    assert together.total < min(saved.total, tiny.total)
    small = pm.memory_problem(root, "m", {**gen, "dtype": "bfloat16", "resolution": 32}, "cpu", have)
    assert small.split("Fix: ")[1].startswith("the weights saved in bfloat16 (once, "), small
    assert "fits" in small and "batch_size" not in small and "decoder: tiny" not in small  # they would not lower it


def test_the_load_offers_the_fixes_that_lower_its_estimate(tmp_path, monkeypatch):
    """The sampler's own check (a GPU, a SLURM node) offers the same fixes, from the load's estimate."""
    from gendistill.sampling import pipeline

    monkeypatch.setattr(pipeline, "available_bytes", lambda: (20 * GIB, "MemAvailable"))
    root = fake_sdxl(tmp_path / "m", 7_000_000_000, dtype="F32")
    with pytest.raises(pipeline.DeviceMemoryError) as e:
        pipeline.load_pipeline(str(root), None, "cpu", pipeline.torch.float32)
    msg = str(e.value)
    saved = pm.stored_in_load_dtype(pm.estimate(root, "bfloat16", 0, 0))
    assert "generation.dtype: bfloat16 (" not in msg and "batch_size" not in msg, msg
    assert "bfloat16 with the weights saved in bfloat16 (once, " in msg and f"{saved.total / GIB:.1f} GiB, fits" in msg
