"""benchmarks/gpu_suite.py --smoke: every section of the GPU suite on the tiny pipelines, on the CPU, so that the
suite cannot rot before its first GPU run; and the random-weight model directories it builds on a GPU node
(gendistill.generator.random_dir), on tiny configs of every family."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import REPO

SECTIONS = [
    "setup",
    "components",
    "compiled",
    "tiny_256",
    "sd_turbo",
    "reference",
    "workflow",
    "time_budget",
    "evaluation",
]


@pytest.mark.slow
@pytest.mark.long  # every section, a workflow run, the time-budget measurement, training steps: ~75 s of CPU
def test_smoke_runs_every_section_and_writes_the_table(tmp_path, private_runtime):
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--smoke", "--out", str(out), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "components: start" in proc.stdout and "workflow: ok" in proc.stdout  # progress lines
    rows = list(csv.DictReader((out / "gpu_suite.csv").open()))
    sections = {r["section"]: r for r in rows if r["step"] == "section"}
    assert list(sections) == SECTIONS and all(r["status"] == "ok" for r in sections.values()), sections
    assert {r["device"] for r in rows} == {"cpu"} and rows[0]["torch"] == torch.__version__
    assert rows[0]["requirements"] == "all met"

    def measured(section, step, **match):
        return [
            r
            for r in rows
            if r["section"] == section and r["step"] == step and all(r[k] == str(v) for k, v in match.items())
        ]

    for b in (1, 2, 4):  # every batch size, every VAE mode, with FLOPs per image and a rate
        for step in ("text_encode", "unet_step"):
            assert measured("components", step, batch=b)
        for mode in ("upcast", "fp32", "bf16"):
            for step in ("vae_decode", "end_to_end"):
                (r,) = measured("components", step, batch=b, vae_mode=mode)
                assert float(r["img_per_s"]) > 0 and float(r["gflop_per_image"]) > 0 and float(r["ms_per_call"]) > 0
    assert measured("compiled", "end_to_end", compiled=True)
    assert measured("tiny_256", "end_to_end", decoder="tiny", resolution=32)
    assert measured("tiny_256", "end_to_end", decoder="tiny", resolution=16)
    assert measured("tiny_256", "end_to_end", decoder="vae", resolution=16)
    assert measured("sd_turbo", "end_to_end", model="tiny sd")
    (ref,) = measured("reference", "reference_loop")
    (wf,) = measured("workflow", "workflow_to_package", status="ok")
    assert "3/3 classes" in wf["note"] and "pipeline loads 1" in wf["note"]
    (tb,) = measured("time_budget", "recommendation", status="ok")
    assert "n_generated" in tb["note"] and float(tb["img_per_s"]) > 0
    # the e2e of ours beats the one-image-per-call reference loop on the same tiny model (batching, encode once)
    best = max(float(r["img_per_s"]) for r in measured("components", "end_to_end", vae_mode="upcast"))
    assert best > float(ref["img_per_s"])
    # the evaluation's training step: each case in float32, bf16, bf16 + channels-last, compiled; the kd cache
    for model, batches in (("ResNet-18 KD (resnet18)", (4, 8)), ("ConvNet-D3 (convnet_d3)", (8,))):
        for b in batches:
            steps = measured("evaluation", "train_step", model=model, batch=b)
            variants = {(r["precision"], r["channels_last"], r["compiled"]) for r in steps}
            assert variants == {
                ("float32", "False", "False"),
                ("bf16", "False", "False"),
                ("bf16", "True", "False"),
                ("bf16", "True", "True"),
            }, variants
            assert all(float(r["img_per_s"]) > 0 and float(r["gflop_per_image"]) > 0 for r in steps)
    (cached,) = measured("evaluation", "train_step_kd_cache", batch=4)
    (online,) = measured("evaluation", "train_step", batch=4, precision="bf16", channels_last=True, compiled=False)
    assert float(cached["gflop_per_image"]) == pytest.approx(0.75 * float(online["gflop_per_image"]), rel=0.02)
    md = (out / "gpu_suite.md").read_text()
    assert "## Evaluation: one training step" in md and md.count("| train_step |") == 12
    assert md.count("\n| components | end_to_end |") == 9 and "| workflow | section | ok |" in md
    assert "device_name:" in md and "torch: " + torch.__version__ in md


def _configs_only(model_dir, out):
    """A folder of a model's configs alone (no weights, no tokenizers), as benchmarks/model_configs/ holds."""
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "tiny_decoder"))
    for d in out.iterdir():
        if d.is_dir() and d.name.startswith("tokenizer"):
            shutil.rmtree(d)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sdxl", "sd", "sd3", "flux", "pixart", "sana_sprint", "dit"])
def test_random_model_dir_builds_from_configs_in_its_dtype_and_loads(tmp_path, family):
    """Any family's directory from configs alone: weights in the chosen dtype, tokenizers written offline,
    reused when asked again, rebuilt for another dtype, loaded and sampled by the workflow's own code."""
    from safetensors import safe_open

    from gendistill.generator.build import save_tiny_pipeline
    from gendistill.generator.random_dir import build_random_model_dir
    from gendistill.sampling.generate import Sampler
    from gendistill.sampling.pipeline import load_pipeline

    configs = _configs_only(save_tiny_pipeline(tmp_path / "tiny", {"family": family}), tmp_path / "configs")
    out = tmp_path / "random"
    rec = build_random_model_dir(configs, out, "bfloat16", seed=3, log=lambda line: None)
    assert not rec["reused"] and rec["dtype"] == "bfloat16" and sum(rec["parameters"].values()) > 0
    weights = sorted(out.rglob("*.safetensors"))
    assert weights and all(
        {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"BF16"}
        for f in map(lambda p: safe_open(p, "pt"), weights)
    )
    assert (out / "RANDOM_WEIGHTS.txt").is_file() and json.loads((out / "build.json").read_text())["seed"] == 3
    assert build_random_model_dir(configs, out, "bfloat16", seed=3, log=lambda line: None)["reused"]
    pipe = load_pipeline(str(out), None, "cpu", torch.float32)
    sampler = Sampler(pipe, "cpu", torch.float32, 2)
    prompt = next(iter(sampler.adapter.labels)) if getattr(sampler.adapter, "labels", None) else "a cat"
    imgs, _ = sampler.generate_seeds(prompt, [1, 2], {"resolution": 32, "steps": 1, "guidance_scale": 0.0}, 16)
    assert imgs.shape == (2, 16, 16, 3)
    again = build_random_model_dir(configs, out, "float16", seed=3, log=lambda line: None)
    assert not again["reused"] and again["dtype"] == "float16"


def test_random_model_dir_of_a_single_model_and_the_seed(tmp_path):
    """A folder of one model (a tiny decoder's config.json): the model itself; the same seed, the same bytes."""
    from gendistill.generator.random_dir import build_random_model_dir

    taesd = REPO / "benchmarks" / "model_configs" / "taesd"
    a = build_random_model_dir(taesd, tmp_path / "a", "float16", seed=1, log=lambda line: None)
    build_random_model_dir(taesd, tmp_path / "b", "float16", seed=1, log=lambda line: None)
    build_random_model_dir(taesd, tmp_path / "c", "float16", seed=2, log=lambda line: None)
    weights = [(tmp_path / n / "diffusion_pytorch_model.safetensors").read_bytes() for n in "abc"]
    assert weights[0] == weights[1] != weights[2] and a["parameters"]["."] > 1_000_000
