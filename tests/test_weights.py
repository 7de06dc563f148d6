"""Plan-time checks of the model's weight files (gendistill.weights): each file's header is opened, and the files
are the ones diffusers would load for the variant the config asks for. The reproduction of the issue "The
sampler's key must be what decides the pixels" (5): `snakemake -n` passed a truncated UNet and weights present
only as the fp16 variant on a CPU, and every sample job then failed."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from conftest import TINY_CONFIG, deep_update, run_snakemake

from gendistill.config import ConfigError
from gendistill.plan import build_plan
from gendistill.weights import safetensors_problem, variant_of

UNET = "unet/diffusion_pytorch_model.safetensors"


def plan_error(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        build_plan(cfg)
    return str(e.value)


def local(source, **generation) -> dict:
    return deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(source)}, "generation": generation})


@pytest.fixture
def model(tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy


# ---- the header check ---------------------------------------------------------------------------------------


def test_safetensors_header_check(tmp_path):
    from safetensors.numpy import save_file

    good = tmp_path / "good.safetensors"
    save_file({"w": np.ones((4, 3), np.float32), "b": np.zeros(5, np.float16)}, str(good))
    data = good.read_bytes()
    assert safetensors_problem(good) is None
    cases = {
        "cut": (data[:-7], "truncated"),
        "extra": (data + b"\0\0", "has trailing bytes"),
        "tiny": (data[:5], "shorter than a safetensors header"),
        "head": (data[:40], "truncated or not safetensors"),
        "json": (struct.pack("<Q", 4) + b"{x:1", "not valid JSON"),
        "list": (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    }
    for name, (content, why) in cases.items():
        f = tmp_path / f"{name}.safetensors"
        f.write_bytes(content)
        assert why in (safetensors_problem(f) or ""), (name, safetensors_problem(f))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 40]}}).encode()
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 40)
    assert "needs 48" in safetensors_problem(lying)


def test_overlapping_or_gapped_data_offsets_are_refused_as_safetensors_refuses_them(tmp_path):
    """Issue 31, item 4: a header whose tensors overlap (valid JSON, the right end offset, every tensor the right
    length) passed the check and failed at load. safetensors reads tensors in the order of their offsets, each
    starting where the previous one ends: an overlap or a gap is refused, by it and now by the check."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    def write(name, offsets):
        header = {k: {"dtype": "F32", "shape": [(e - b) // 4], "data_offsets": [b, e]} for k, (b, e) in offsets.items()}
        raw = json.dumps(header).encode()
        f = tmp_path / f"{name}.safetensors"
        f.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
        return f

    good = write("good", {"a": (0, 8), "b": (8, 16)})
    overlap = write("overlap", {"a": (0, 8), "b": (4, 12), "c": (12, 16)})
    gap = write("gap", {"a": (0, 8), "b": (12, 16)})
    assert safetensors_problem(good) is None and set(load_file(str(good))) == {"a", "b"}
    assert "tensor 'b' has data_offsets [4, 12], which overlaps tensor 'a'" in safetensors_problem(overlap)
    assert "tensor 'b' has data_offsets [12, 16], which leaves bytes 8-12 unused" in safetensors_problem(gap)
    for f in (overlap, gap):
        with pytest.raises(SafetensorError):
            load_file(str(f))


def test_variant_names_as_diffusers_reads_them():
    assert variant_of("diffusion_pytorch_model.safetensors") is None
    assert variant_of("diffusion_pytorch_model.fp16.safetensors") == "fp16"
    assert variant_of("model.fp16.safetensors") == "fp16" and variant_of("pytorch_model.bin") is None
    assert variant_of("diffusion_pytorch_model-00001-of-00002.safetensors") is None
    assert variant_of("diffusion_pytorch_model.fp16-00001-of-00002.safetensors") == "fp16"
    assert variant_of("diffusion_pytorch_model.safetensors.index.json") is None
    assert variant_of("diffusion_pytorch_model.safetensors.index.fp16.json") == "fp16"


# ---- 5. the plan refuses weights every job would fail on ------------------------------------------------


@pytest.mark.parametrize("cut", [100, 1000])
def test_a_truncated_unet_is_refused_at_plan_time(model, cut):
    """Cut inside the header (100 bytes) or in the tensor data (1000 bytes short): refused, naming the file."""
    weights = model / UNET
    data = weights.read_bytes()
    weights.write_bytes(data[:cut] if cut == 100 else data[:-cut])
    msg = plan_error(local(model))
    assert UNET in msg and "truncated" in msg and "Every sample job would fail" in msg, msg


def test_fp16_only_weights_without_a_variant_asked_for_are_refused_with_the_fix(model, tmp_path, monkeypatch):
    """The UNet only as diffusion_pytorch_model.fp16.safetensors. A local directory (loaded without a variant)
    and a hub model on the CPU are refused, naming the file and the fix; a hub model on a GPU in float16 asks
    for the fp16 variant and passes; device auto is refused saying where it would fail."""
    fp16 = model / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    (model / UNET).rename(fp16)
    msg = plan_error(local(model))
    assert "unet/ has weights only as the fp16 variant" in msg and "local model directory" in msg, msg
    assert "hf download <id> --include" in msg
    cache = tmp_path / "hub"
    snapshot = cache / "models--org--m" / "snapshots" / ("e" * 40)
    shutil.copytree(model, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("e" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": "org/m"}})
    assert "float32 on device cpu loads the plain files" in plan_error(
        deep_update(hub, {"generation": {"device": "cpu", "dtype": "float32"}})
    )
    assert "wherever no GPU is visible" in plan_error(hub)  # device auto, dtype auto
    build_plan(deep_update(hub, {"generation": {"device": "cuda"}}))  # dtype auto = float16: the variant loads
    fp16.write_bytes(fp16.read_bytes()[:-10])
    (snapshot / "unet" / fp16.name).write_bytes(fp16.read_bytes())
    assert "fp16.safetensors" in plan_error(deep_update(hub, {"generation": {"device": "cuda"}}))  # checked too


def overlap_unet_offsets(model) -> None:
    """Move the UNet's second tensor (in offset order) 4 bytes back: it overlaps the first and leaves a gap before
    the third; valid JSON, every tensor the right length, the same end offset, the same file size."""
    weights = model / UNET
    data = weights.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    second = sorted((v["data_offsets"], k) for k, v in header.items() if k != "__metadata__")[1][1]
    header[second]["data_offsets"] = [o - 4 for o in header[second]["data_offsets"]]
    raw = json.dumps(header, separators=(",", ":")).encode()
    weights.write_bytes(data[:8] + raw.ljust(n) + data[8 + n :])  # padded with spaces to the header's length


def test_overlapping_offsets_are_refused_at_plan_time_and_a_load_names_the_file(model):
    """The plan refuses the UNet, naming the file; a load that gets past the plan (another process, `limits`
    notwithstanding) fails naming the file and what is wrong with it, not only a tensor."""
    import torch

    from gendistill.sampling.pipeline import WeightsError, load_pipeline

    overlap_unet_offsets(model)
    msg = plan_error(local(model))
    assert f"{UNET} tensor" in msg and "overlaps tensor" in msg and "Every sample job would fail" in msg, msg
    with pytest.raises(WeightsError) as e:
        load_pipeline(str(model), None, "cpu", torch.float32)
    assert f"{model}/{UNET} tensor" in str(e.value) and "overlaps tensor" in str(e.value), str(e.value)


@pytest.mark.parametrize("damage", ["truncated", "overlaps"])
def test_dry_run_refuses_a_damaged_model_before_any_job(model, tmp_path, damage):
    """The reproductions as run: `snakemake -n` with a truncated UNet, or one whose tensors overlap (issue 31, item
    4), stops with the file named."""
    weights = model / UNET
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-1000])
    else:
        overlap_unet_offsets(model)
    proc = run_snakemake(tmp_path / "wd", local(model), "-n", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and UNET in out and damage in out, out[-3000:]
