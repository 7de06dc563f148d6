"""Tiers 2 and 3: `--lint`, dry runs, and tiny end-to-end runs (labels, load-once, caching, reproducibility)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO, SNAKEMAKE, TINY_CONFIG, deep_update, job_counts, run_snakemake, write_config

pytestmark = pytest.mark.workflow


def test_lint_is_clean(tmp_path):
    """`snakemake --lint` exits 0 only when it finds nothing."""
    proc = run_snakemake(tmp_path, TINY_CONFIG, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_config_without_data_or_model_explains_what_is_missing():
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1"], cwd=REPO, capture_output=True, text=True, env=env, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "cifar-100-python" in out and "expected layout" in out and "cifar-100-python.tar.gz" in out
    assert "not in the Hugging Face cache" in out and "hf download stabilityai/sdxl-turbo" in out
    assert "Traceback" not in out


def test_dry_run_plans_one_sample_job_per_class(tmp_path):
    proc = run_snakemake(tmp_path, TINY_CONFIG, "--dag")
    counts = job_counts(proc.stdout)
    assert counts["sample"] == 3 and counts["augment"] == 1 and counts["package"] == 1
    assert counts["build_tiny_model"] == 1 and counts["evaluate"] == 1


def test_no_prompt_or_model_path_is_on_a_job_command_line(tmp_path):
    """What a job runs is on the process table for every user of the machine (`bash -c "<command>"` and the job's
    own argv). The sample and prompts jobs' commands carry no prompt and no load spec (the model path): those are in
    request files the workflow writes, private (0600 in a 0700 directory). Checked on the commands Snakemake runs
    (`-n -p` prints them), with a prompt of one class's own."""
    secret = "a prompt only its author may read"
    cfg = deep_update(TINY_CONFIG, {"prompts": {"overrides": {"one": {"prompt": secret}}}})
    proc = run_snakemake(tmp_path, cfg, "-n", "-p")
    commands = [line for line in proc.stdout.splitlines() if "-m gendistill " in line]
    sample = [c for c in commands if "gendistill sample " in c]
    assert len(sample) == 3 and any("gendistill write-prompts" in c for c in commands), proc.stdout[-3000:]
    model_dir = next(c for c in commands if "build-tiny-model" in c).split("--out ")[1].split()[0]
    for command in commands:
        assert secret not in command and "a photo of" not in command and '"source"' not in command, command
    for command in sample:
        assert "--request" in command and model_dir not in command, command
    requests = tmp_path / "results" / "t" / ".requests"
    assert stat.S_IMODE(requests.stat().st_mode) == 0o700
    files = sorted(requests.glob("*.json"))
    assert len(files) == 4 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert sum(secret in f.read_text() for f in files) == 2  # class one's request, and the prompt table's


def load_dataset(wd: Path):
    out = wd / "results" / "t" / "dataset"
    return torch.load(out / "distilled.pt", weights_only=True), pd.read_csv(out / "manifest.csv"), out


def test_labels_are_the_datasets_class_indices(tiny_run):
    data, manifest, out = load_dataset(tiny_run)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert data["class_names"] == names
    labels = data["labels"].tolist()
    assert labels == manifest["label"].tolist() and labels == sorted(labels)
    assert [data["class_names"][i] for i in labels] == manifest["class_name"].tolist()
    assert pd.Series(labels).value_counts().to_dict() == {0: 6, 1: 6, 2: 6}  # 2 generated x (1 + 2 aug)
    assert data["images"].shape == (18, 3, 32, 32) and data["images_uint8"].dtype == torch.uint8
    # the normalised tensor is the uint8 one under the stored mean/std
    m, s = torch.tensor(data["mean"]).view(1, 3, 1, 1), torch.tensor(data["std"]).view(1, 3, 1, 1)
    assert torch.allclose(data["images"], (data["images_uint8"].float() / 255 - m) / s)
    # ImageFolder: class directories sort in label order, so torchvision reads the true labels
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(out / "imagefolder")
    assert [int(c.split("_")[0]) for c in folder.classes] == [0, 1, 2]
    assert [folder.classes[t] for _, t in folder.samples] == manifest["class_id"].tolist()
    # every manifest row names its prompt, seed and a sha256 that matches the file
    import hashlib

    for _, row in manifest.iterrows():
        assert hashlib.sha256((out / "imagefolder" / row["file"]).read_bytes()).hexdigest() == row["sha256"]
    assert set(manifest["prompt"]) == {f"a handwritten digit {n}" for n in names[:3]}


def test_pipeline_loaded_once_for_all_classes(tiny_run):
    records = sorted((tiny_run / "results" / "t" / "generated").glob("*/records.json"))
    metas = [json.loads(p.read_text())["meta"] for p in records]
    assert len(metas) == 3
    assert {m["server_pid"] for m in metas} == {metas[0]["server_pid"]} != {None}  # one sampler served them all
    assert {m["pipeline_loads"] for m in metas} == {1}  # ...and it loaded the pipeline once
    prov = json.loads((tiny_run / "results" / "t" / "dataset" / "provenance.json").read_text())
    assert prov["random_weights"] is True and prov["packages"]["torch"] and prov["model"]["local_sha256"]


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)  # copy2 keeps mtimes, so Snakemake sees the same state
    return dst


def test_editing_one_class_reruns_only_that_class(tiny_run, tmp_path):
    wd = copy_run(tiny_run, tmp_path / "run")
    assert job_counts(run_snakemake(wd, TINY_CONFIG, "--dag").stdout) == {}  # nothing to do
    edits = {
        "prompt": {"prompts": {"overrides": {"one": {"prompt": "the numeral 1"}}}},
        "seed": {"prompts": {"overrides": {"two": {"seed": 5}}}},
        "count": {"prompts": {"overrides": {"zero": {"n_generated": 3}}}},
    }
    for what, patch in edits.items():
        counts = job_counts(run_snakemake(wd, deep_update(TINY_CONFIG, patch), "--dag").stdout)
        assert counts.get("sample") == 1 and counts.get("augment") == 1, (what, counts)
    # knobs that do not change pixels rerun nothing
    runtime = {"generation": {"batch_size": 1, "server": False, "server_idle_seconds": 5}}
    assert job_counts(run_snakemake(wd, deep_update(TINY_CONFIG, runtime), "--dag").stdout) == {}
    # run the prompt edit for real: the other classes' files are untouched
    gen = wd / "results" / "t" / "generated"
    before = {p.name: p.joinpath("records.json").stat().st_mtime_ns for p in gen.iterdir()}
    run_snakemake(wd, deep_update(TINY_CONFIG, edits["prompt"]), targets=("results/t/dataset/distilled.pt",))
    after = {p.name: p.joinpath("records.json").stat().st_mtime_ns for p in gen.iterdir()}
    assert after["000_zero"] == before["000_zero"] and after["002_two"] == before["002_two"]
    assert after["001_one"] != before["001_one"]
    manifest = pd.read_csv(wd / "results" / "t" / "dataset" / "manifest.csv")
    assert set(manifest.loc[manifest.label == 1, "prompt"]) == {"the numeral 1"}


def test_rerun_is_byte_identical_across_runs_batch_sizes_and_sampler_modes(tiny_run, tmp_path):
    cfg = deep_update(TINY_CONFIG, {"generation": {"batch_size": 1, "server": False}})
    run_snakemake(tmp_path, cfg, targets=("results/t/dataset/distilled.pt",))  # the set (what is compared) only
    for rel in ("dataset/distilled.pt", "dataset/manifest.csv"):
        a = (tiny_run / "results" / "t" / rel).read_bytes()
        b = (tmp_path / "results" / "t" / rel).read_bytes()
        assert a == b, rel
    pngs = sorted((tiny_run / "results" / "t" / "dataset" / "imagefolder").rglob("*.png"))
    assert pngs and all(p.read_bytes() == (tmp_path / p.relative_to(tiny_run)).read_bytes() for p in pngs)


def test_a_clone_path_with_spaces_runs_shell_jobs(tmp_path):
    """The shell jobs' interpreter and source paths are quoted: a checkout in "My Projects/..." works. And a
    prompt with braces is a prompt, not a Snakemake wildcard pattern."""
    clone = tmp_path / "My Projects" / "gen distill"
    cfg = deep_update(TINY_CONFIG, {"prompts": {"overrides": {"one": {"prompt": "the {name} one"}}}})
    clone.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", clone / "Snakefile")
    for part in ("workflow", "src", "envs"):
        shutil.copytree(REPO / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(clone / "Snakefile"),
            "--directory",
            str(tmp_path / "work"),
            "--configfile",
            str(write_config(tmp_path, cfg)),
            "--cores",
            "1",
            "prompts",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "work" / "results" / "t" / "prompts.csv")
    assert rows["prompt"].tolist()[1] == "the {name} one" and len(rows) == 3
