"""What decides the pixels decides the reruns: the model. The reproductions of issue 31's items 1 and 2.

1. A changed model reran nothing: the sample jobs' params named the model by its path or hub id only, so replacing a
   local model's weights, or `hf download` moving the cache's refs/main to an updated snapshot, left `snakemake -n`
   with "Nothing to be done" and the dataset with the old model's images. The params now carry the resolved model
   (a hub id's snapshot commit, a local directory's content hash), and records.json names the local weights.
2. A symlinked component folder served stale weights: the warm sampler's key listed the model's files with
   Path.rglob, which does not descend into a symlinked `unet/` on Python 3.11.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, deep_update, job_counts, run_snakemake
from sampler_helpers import CLS, client_cmd, read_meta

from gendistill import model_files
from gendistill.plan import build_plan
from gendistill.sampling.runtime import files_fingerprint

UNET = "unet/diffusion_pytorch_model.safetensors"


def replace_file(path: Path, content: bytes) -> None:
    """How a download or a copy replaces a file: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(content)
    tmp.rename(path)


# ---- the model's files: listed through symlinked folders, hashed by content --------------------------------------


def test_files_are_listed_through_symlinked_folders_once(tmp_path):
    model, elsewhere = tmp_path / "m", tmp_path / "u"
    (model / "vae").mkdir(parents=True)
    (model / "vae" / "w.safetensors").write_bytes(b"vae")
    elsewhere.mkdir()
    (elsewhere / "w.safetensors").write_bytes(b"unet")
    (model / "unet").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(model, target_is_directory=True)  # a link back up: listed once, no loop
    names = [name for name, _ in model_files.files(model)]
    assert names == ["unet/w.safetensors", "vae/w.safetensors"]
    # the warm sampler's key: weights replaced inside the symlinked folder change it (rglob did not see them)
    before = files_fingerprint(model, str(model))
    replace_file(elsewhere / "w.safetensors", b"UNET")  # the same size
    os.utime(elsewhere / "w.safetensors", ns=(1, 1))
    assert files_fingerprint(model, str(model)) != before


def test_the_content_hash_sees_contents_and_nothing_else(tmp_path, monkeypatch):
    """A copy or a touch keeps the hash (nothing reruns); other contents of the same size, with the old mtime put
    back, change it (the file's ctime does not go back); the hash of an unchanged file is read from the cache."""
    model, cache = tmp_path / "m", tmp_path / "hashes.json"
    (model / "unet").mkdir(parents=True)
    (model / UNET).write_bytes(b"weights a")
    (model / "model_index.json").write_text("{}")
    (model / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"a variant: never loaded from here")
    (model / ".cache").mkdir()
    (model / ".cache" / "download.metadata").write_text("etag, time")
    first = model_files.content_sha256(model, cache)
    reads = []
    real = model_files.file_sha256
    monkeypatch.setattr(model_files, "file_sha256", lambda path: reads.append(path) or real(path))
    assert model_files.content_sha256(model, cache) == first and reads == []  # from the cache
    for ignored in (".cache/download.metadata", "unet/diffusion_pytorch_model.fp16.safetensors"):
        (model / ignored).write_text("changed")
    assert model_files.content_sha256(model, cache) == first and reads == []
    os.utime(model / UNET)  # touched
    assert model_files.content_sha256(model, cache) == first and len(reads) == 1
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert model_files.content_sha256(copy, cache) == first
    st = (model / UNET).stat()
    replace_file(model / UNET, b"weights b")
    os.utime(model / UNET, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert model_files.content_sha256(model, cache) != first


def local_config(source, results_dir, **more) -> dict:
    return deep_update(
        TINY_CONFIG, {"model": {"tiny": None, "source": str(source)}, "results_dir": str(results_dir), **more}
    )


def add_snapshot(cache: Path, repo_id: str, model_dir, commit: str) -> None:
    """What `hf download` leaves for a new commit of a model: snapshots/<commit>/ and refs/main pointing at it."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, folder / "snapshots" / commit)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)


def test_the_plan_resolves_the_model_into_the_load_param(tiny_model_dir, tmp_path, monkeypatch):
    """The sample jobs' `load` param: a local directory's content hash, a hub id's cached snapshot (the one refs/main
    names now), a tiny decoder's likewise; the demo model the workflow builds is left as it is (an input of the
    sample rule, which does not exist yet when the first plan is made)."""
    local = build_plan(local_config(tiny_model_dir, tmp_path / "results")).load_spec
    assert local["sha256"] == model_files.content_sha256(Path(tiny_model_dir)) and "snapshot" not in local
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    add_snapshot(cache, "org/m", tiny_model_dir, "a" * 40)
    hub = local_config("org/m", tmp_path / "results", generation={"device": "cpu", "dtype": "float32"})
    assert build_plan(hub).load_spec["snapshot"] == "a" * 40
    add_snapshot(cache, "org/m", tiny_model_dir, "b" * 40)
    assert build_plan(hub).load_spec["snapshot"] == "b" * 40
    decoder = str(Path(tiny_model_dir) / "tiny_decoder")
    spec = build_plan(
        local_config(tiny_model_dir, tmp_path / "results", generation={"decoder": "tiny", "tiny_decoder": decoder})
    ).load_spec
    assert spec["tiny_decoder_sha256"] == model_files.content_sha256(Path(decoder))
    built = build_plan(deep_update(TINY_CONFIG, {"generation": {"decoder": "tiny"}})).load_spec
    assert not {"sha256", "snapshot", "tiny_decoder_sha256"} & set(built)


# ---- through the workflow -----------------------------------------------------------------------------------------


# Two classes of one image each, only their sample jobs asked for: what the reruns are about.
CLASSES = {"dataset": {"classes": [0, 1]}, "generation": {"n_generated": 1}, "evaluation": {"activate": False}}
GENERATED = ("results/t/generated/000_zero", "results/t/generated/001_one")


def sample_jobs(wd: Path, cfg: dict, env: dict | None = None) -> int:
    return job_counts(run_snakemake(wd, cfg, "--dag", env=env, targets=GENERATED).stdout).get("sample", 0)


def pngs(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted((run / "results/t/generated").rglob("*.png"))}


@pytest.mark.long  # two runs with a sampler of their own each: ~45 s on 2 busy cores
@pytest.mark.workflow
def test_a_replaced_local_model_reruns_every_class_from_a_fresh_sampler(tiny_model_dir, tmp_path, private_runtime):
    """A local model whose unet/ is a symlink to another folder (item 2's reproduction) is sampled; its UNet
    weights are then replaced inside that folder by another model's (a new file renamed over the old: the same
    size, the same safetensors header). `snakemake -n` plans both classes again (item 1), and the rerun, with the
    first run's sampler still warm, writes what a fresh load of the new weights gives (`server: false`), not the
    old weights' images. Touching the weights, or a knob that decides no pixel, plans nothing."""
    from gendistill.generator.build import save_tiny_pipeline

    model, unet = tmp_path / "model", tmp_path / "unet-elsewhere"
    shutil.copytree(tiny_model_dir, model)
    shutil.move(model / "unet", unet)
    (model / "unet").symlink_to(unet, target_is_directory=True)
    cfg = local_config(model, "results", **CLASSES)
    wd = tmp_path / "run"
    run_snakemake(wd, cfg, targets=GENERATED)
    first, meta = pngs(wd), read_meta(wd / GENERATED[0])
    assert meta["model_sha256"] == model_files.content_sha256(model) and meta["model_snapshot"] is None
    os.utime(unet / "diffusion_pytorch_model.safetensors")
    knobs = deep_update(cfg, {"generation": {"batch_size": 1, "server_idle_seconds": 30}})
    assert sample_jobs(wd, cfg) == 0 and sample_jobs(wd, knobs) == 0

    other = save_tiny_pipeline(tmp_path / "other", {"seed": 1})
    replace_file(unet / "diffusion_pytorch_model.safetensors", (Path(other) / UNET).read_bytes())
    assert sample_jobs(wd, cfg) == 2
    run_snakemake(wd, cfg, targets=GENERATED)
    again = read_meta(wd / GENERATED[0])
    assert again["server_pid"] != meta["server_pid"] and again["model_sha256"] != meta["model_sha256"]
    fresh = tmp_path / "fresh"
    run_snakemake(fresh, deep_update(cfg, {"generation": {"server": False}}), targets=GENERATED)
    assert pngs(wd) == pngs(fresh) != first


@pytest.mark.workflow
def test_a_hub_model_whose_refs_main_moved_reruns_every_class(tiny_model_dir, tmp_path, private_runtime):
    """`model.source: org/name` from the local cache: sampled, then `hf download` of an updated model adds a
    snapshot and moves refs/main to it. `snakemake -n` plans both classes again, and records.json names the
    snapshot each class was made from."""
    cache = tmp_path / "hub"
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    add_snapshot(cache, "someorg/tiny-model", tiny_model_dir, "a" * 40)
    cfg = deep_update(local_config("someorg/tiny-model", "results", **CLASSES), {"generation": {"dtype": "float32"}})
    wd = tmp_path / "run"
    run_snakemake(wd, cfg, env=env, targets=GENERATED)
    assert read_meta(wd / GENERATED[1])["model_snapshot"] == "a" * 40
    assert sample_jobs(wd, cfg, env) == 0
    add_snapshot(cache, "someorg/tiny-model", tiny_model_dir, "b" * 40)  # the same files: still another snapshot
    assert sample_jobs(wd, cfg, env) == 2


# ---- the warm sampler, weights replaced after the plan -------------------------------------------------------------


def test_weights_replaced_in_a_symlinked_folder_after_the_plan_get_a_new_sampler(
    tiny_model_dir, tmp_path, private_runtime
):
    """Between the plan (whose content hash the request carries) and the job, the weights inside a symlinked unet/
    are replaced: the job does not reach the warm sampler of the old weights (its key lists the files through the
    link), and writes the new weights' images."""
    import numpy as np
    from PIL import Image

    from gendistill.generator.build import save_tiny_pipeline

    model, unet = tmp_path / "model", tmp_path / "unet-elsewhere"
    shutil.copytree(tiny_model_dir, model)
    shutil.move(model / "unet", unet)
    (model / "unet").symlink_to(unet, target_is_directory=True)
    load = {"source": str(model), "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}
    load["sha256"] = model_files.content_sha256(model)  # as the plan resolved it

    def job(out):
        proc = subprocess.run(client_cmd(load, CLS, out, {"idle": 60}), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return read_meta(out), np.stack([np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))])

    (a, pixels_a) = job(tmp_path / "a")
    other = save_tiny_pipeline(tmp_path / "other", {"seed": 1})
    replace_file(unet / "diffusion_pytorch_model.safetensors", (Path(other) / UNET).read_bytes())
    (b, pixels_b) = job(tmp_path / "b")
    assert b["server_pid"] != a["server_pid"] and b["started_sampler"]
    assert not np.array_equal(pixels_a, pixels_b)
