"""Tier 1: the sampler's key is what decides the pixels. One test per reproduction of the issue "The sampler's key
must be what decides the pixels" about the key, each with a warm sampler in use (the streams: test_sampler_streams.py):

1. a hub id whose cache moved to a new snapshot is served from the new snapshot, and records say which
2. an edit outside sampling/ (the PNG encoder in imageio.py) is never served stale
3. a module edited while the sampler loads is not recorded under the clean tree's hash

and of issue 31's item 3: with `generation.server: false` a stale .pyc (its source edited with size and mtime kept)
ran while the edited file's hash was recorded, and the two modes recorded different module sets, so their code
hashes could not be compared.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from sampler_helpers import CLS, client_cmd, read_meta

from gendistill.hf_cache import cached_snapshot, hub_cache_dir
from gendistill.sampling.code import digest, tree_files

pytestmark = pytest.mark.usefixtures("private_runtime")


def pixels(out) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(p.read_bytes()))) for p in sorted(out.glob("*.png"))])


def run_job(
    load: dict, out, src=REPO / "src", env: dict | None = None, cls: dict = CLS, runtime: dict | None = None
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        client_cmd(load, cls, out, runtime or {"idle": 60}, src=src),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def copy_src(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "gendistill", src / "gendistill", ignore=shutil.ignore_patterns("__pycache__"))
    return src


# ---- 1. a hub id resolves to the snapshot the cache holds now --------------------------------------------------


def add_snapshot(cache, repo_id: str, model_dir: str, commit: str) -> None:
    """What `hf download` leaves for a new commit of a model: snapshots/<commit>/ and refs/main pointing at it."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, folder / "snapshots" / commit)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)


def test_a_hub_model_whose_cache_moved_is_served_from_the_new_snapshot(tiny_model_dir, tmp_path, monkeypatch):
    """`model.source: org/name` from the local cache (HF_HUB_OFFLINE). The cache's refs/main then moves to a new
    snapshot (an updated model, other weights) and the class is sampled again while the first sampler is warm:
    the images are the new snapshot's, from a new sampler, and records.json names each snapshot. (The key used to
    hold the id string, so the warm sampler served the old weights.)"""
    from gendistill.generator.build import save_tiny_pipeline

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo, old, new = "someorg/tiny-model", "a" * 40, "b" * 40
    add_snapshot(cache, repo, tiny_model_dir, old)
    load = {"source": repo, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}
    run_job(load, tmp_path / "a")
    add_snapshot(cache, repo, str(save_tiny_pipeline(tmp_path / "other", {"seed": 1})), new)  # refs/main -> new
    run_job(load, tmp_path / "b")
    a, b = read_meta(tmp_path / "a"), read_meta(tmp_path / "b")
    assert not np.array_equal(pixels(tmp_path / "a"), pixels(tmp_path / "b"))
    assert a["server_pid"] != b["server_pid"] and b["started_sampler"]
    assert (a.get("model_snapshot"), b.get("model_snapshot")) == (old, new)
    # the new snapshot's images are what a local copy of its weights gives
    run_job({**load, "source": str(cache / "models--someorg--tiny-model" / "snapshots" / new)}, tmp_path / "local")
    assert np.array_equal(pixels(tmp_path / "b"), pixels(tmp_path / "local"))


def test_the_cache_is_found_as_huggingface_hub_finds_it(tmp_path, monkeypatch):
    """The job resolves a hub id without importing huggingface_hub: the same directory and snapshot as its own
    functions, whichever of the cache variables is set."""
    import importlib

    import huggingface_hub.constants as hf_constants
    from huggingface_hub import try_to_load_from_cache

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    try:
        for var, value in [
            ("XDG_CACHE_HOME", tmp_path / "xdg"),
            ("HF_HOME", tmp_path / "home"),
            ("HUGGINGFACE_HUB_CACHE", tmp_path / "legacy"),
            ("HF_HUB_CACHE", tmp_path / "hub"),
        ]:
            monkeypatch.setenv(var, str(value))
            importlib.reload(hf_constants)
            assert hub_cache_dir() == Path(hf_constants.HF_HUB_CACHE), var
        cache = hub_cache_dir()
        folder = cache / "models--org--m"
        (folder / "snapshots" / ("c" * 40)).mkdir(parents=True)
        (folder / "snapshots" / ("c" * 40) / "model_index.json").write_text("{}")
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("c" * 40)
        (folder / "refs" / "v1").write_text("c" * 40)
        for revision in (None, "main", "v1", "c" * 40):
            commit, snapshot = cached_snapshot("org/m", revision)
            hub_file = try_to_load_from_cache("org/m", "model_index.json", revision=revision, cache_dir=cache)
            assert commit == "c" * 40 and str(snapshot / "model_index.json") == hub_file
        assert cached_snapshot("org/m", "v2") is None and cached_snapshot("org/other") is None
    finally:
        monkeypatch.undo()
        importlib.reload(hf_constants)


# ---- 2. an edit anywhere in the package starts a new sampler ------------------------------------------------


def test_an_edit_outside_sampling_is_not_served_stale(load, tmp_path):
    """The PNG encoder (gendistill/imageio.py, outside sampling/) is edited to invert the pixels and a class is
    sampled again while the sampler is warm: a new sampler writes the inverted pixels, and each class's records
    name the encoder it ran. (The key used to cover sampling/*.py and seeds.py only, so the warm sampler wrote
    the old pixels under the same code hash.)"""
    src = copy_src(tmp_path)
    run_job(load, tmp_path / "a", src)
    imageio = src / "gendistill" / "imageio.py"
    text = imageio.read_text()
    assert "def png_bytes(img" in text
    imageio.write_text(text + INVERT)
    run_job(load, tmp_path / "b", src)
    a, b = read_meta(tmp_path / "a"), read_meta(tmp_path / "b")
    assert np.array_equal(pixels(tmp_path / "b"), 255 - pixels(tmp_path / "a"))
    assert a["server_pid"] != b["server_pid"] and a["code_hash"] != b["code_hash"]
    assert b["code_files"]["gendistill/imageio.py"] == hashlib.sha256(imageio.read_bytes()).hexdigest()


INVERT = """

_png_bytes = png_bytes


def png_bytes(img, *args, **kwargs):  # an edit: invert every image
    return _png_bytes(255 - img, *args, **kwargs)
"""


# ---- 3. the code recorded is the code imported -------------------------------------------------------------


GATE = """import os as _os, time as _time
if _os.environ.get("GD_TEST_IMPORT_GATE"):  # the test holds the sampler here, between its start and this import
    open(_os.environ["GD_TEST_IMPORT_GATE"] + ".waiting", "w").close()
    while not _os.path.exists(_os.environ["GD_TEST_IMPORT_GATE"]):
        _time.sleep(0.02)
"""


def test_a_module_edited_while_the_sampler_loads_is_not_recorded_under_the_old_hash(load, tmp_path):
    """families/sdxl.py (the SDXL family: its adapter) is edited after the job has keyed its sampler but before
    the sampler's load thread imports it. The sampler notices that it imported other bytes than its key's,
    retires, and the job is served by a sampler for the code as it now is: records.json names the edited
    families/sdxl.py, by the hash of its bytes. (The code hash used to be taken at the sampler's import of
    server.py, before the load read the adapter: the edited code ran under the clean tree's hash.)"""
    src = copy_src(tmp_path)
    generate = src / "gendistill" / "sampling" / "generate.py"
    future = "from __future__ import annotations\n"
    assert future in generate.read_text()  # generate.py is imported in the load, before the families
    generate.write_text(generate.read_text().replace(future, future + GATE, 1))
    gate = tmp_path / "gate"
    job = subprocess.Popen(
        client_cmd(load, CLS, tmp_path / "out", {"idle": 60}, src=src),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GD_TEST_IMPORT_GATE": str(gate)},
    )
    try:
        waiting = tmp_path / "gate.waiting"
        deadline = time.monotonic() + 120
        while not waiting.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting.exists(), job.communicate()
        adapters = src / "gendistill" / "families" / "sdxl.py"
        adapters.write_text(adapters.read_text() + "\n# edited while the sampler loaded\n")
        gate.touch()
        out, err = job.communicate(timeout=300)
    finally:
        job.kill()
        job.wait()
    assert job.returncode == 0, out + err
    assert "families/sdxl.py in another version" in out and "starting a sampler for the code" in out, out
    files = read_meta(tmp_path / "out").get("code_files", {})
    on_disk = tree_files(src / "gendistill")
    assert files.get("gendistill/families/sdxl.py") == on_disk["gendistill/families/sdxl.py"]
    assert {f: on_disk[f] for f in files} == files  # every module recorded is the code as it ran
    assert read_meta(tmp_path / "out")["code_hash"] == digest(on_disk)  # the package it was checked against


# ---- 4. generation.server: false records the code that ran, under the hash a sampler records -----------------------


def test_in_process_jobs_compile_what_they_record_and_both_modes_record_one_hash(load, tmp_path):
    """The same class sampled by a sampler and in-process (`server: false`) records the same code hash: the
    package's, which each checked the modules it imported against. Then imageio.py is edited to invert the pixels,
    keeping its size and mtime, beside a .pyc of the unedited file (what `cp -p`, `tar x`, `touch -d` or two edits
    within a second leave): the in-process job runs the edit it records, not the stale .pyc, which Python trusts by
    the source's size and mtime. (It imported normally and hashed the files afterwards: the old pixels under the
    new file's hash.)"""
    import compileall

    src = copy_src(tmp_path)
    in_process = {"idle": 60, "server": False}
    run_job(load, tmp_path / "server", src)
    run_job(load, tmp_path / "a", src, runtime=in_process)
    served, a = read_meta(tmp_path / "server"), read_meta(tmp_path / "a")
    assert a["code_hash"] == served["code_hash"] == digest(tree_files(src / "gendistill"))
    assert a["server_pid"] is None and "gendistill/sampling/server.py" not in a["code_files"]
    assert np.array_equal(pixels(tmp_path / "a"), pixels(tmp_path / "server"))

    assert compileall.compile_dir(src, quiet=1)
    imageio = src / "gendistill" / "imageio.py"
    text, st = imageio.read_text(), imageio.stat()
    edited = text.replace("ascontiguousarray(img)", "ascontiguousarray(~img)").replace("Deterministic", "Determinstic")
    assert edited != text and len(edited) == len(text)
    imageio.write_text(edited)
    os.utime(imageio, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_job(load, tmp_path / "b", src, runtime=in_process)
    b = read_meta(tmp_path / "b")
    assert np.array_equal(pixels(tmp_path / "b"), 255 - pixels(tmp_path / "a"))
    assert b["code_files"]["gendistill/imageio.py"] == hashlib.sha256(imageio.read_bytes()).hexdigest()
    assert b["code_hash"] == digest(tree_files(src / "gendistill")) != a["code_hash"]


@pytest.fixture
def load(tiny_model_dir):
    return {"source": tiny_model_dir, "revision": None, "device": "cpu", "dtype": "float32", "vae_dtype": "auto"}
