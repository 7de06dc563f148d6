"""A non-editable install: the package carries what it reads (the config schema), so a wheel installed away
from the source tree validates configs and plans the workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, TINY_CONFIG, write_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project's wheel, built without build isolation (offline) and installed into a target directory."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src-tree"  # a copy: building writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheel"), str(src)],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    wheel = next((tmp / "wheel").glob("gendistill-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True, capture_output=True
    )
    return tmp / "site"


def _env(site: Path) -> dict:
    # the target directory ahead of the editable install; the snakemake and torch of this venv otherwise
    return {**os.environ, "PYTHONPATH": str(site)}


def test_installed_package_loads_its_schema(installed, tmp_path):
    code = "import gendistill, gendistill.config as c; print(gendistill.__file__); print(c.load_schema()['title'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(installed), cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(installed)
    assert out[1] == "gendistill workflow config"


def test_installed_package_plans_the_workflow(installed, tmp_path):
    """The workflow without the source tree beside it: `snakemake -n` on the tiny config with the installed
    package (the Snakefile puts <workflow>/src first on sys.path; here there is none)."""
    wf = tmp_path / "wf"
    wf.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, wf / name)
    for name in ("workflow", "envs"):
        shutil.copytree(REPO / name, wf / name)
    work = tmp_path / "work"
    cfg = write_config(work, TINY_CONFIG)
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "--quiet",
            "all",
            "-s",
            str(wf / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(cfg),
            "--cores",
            "1",
        ],
        env=_env(installed),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not (wf / "src").exists()


# ---- offline install on a compute node ----------------------------------------------------------------------

# The PyTorch stack a compute node brings (tools/wheelhouse.py NODE_HAS): the no-torch wheelhouse leaves it out.
NODE_STACK = ("torch", "torchvision", "numpy", "pillow")


def node_site(directory: Path) -> Path:
    """A stand-in for a compute node's own site-packages: this venv's torch, torchvision, numpy and pillow and
    everything they require (with extras: the CUDA libraries), as symbolic links, and nothing else. Linked, not
    copied (5 GB); a venv sees it through a .pth file as a venv made with --system-site-packages sees the node's."""
    from importlib import metadata

    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    directory.mkdir(parents=True)
    env = default_environment()
    extras_of: dict[str, frozenset] = {}
    todo = [(name, frozenset()) for name in NODE_STACK]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in extras_of and extras <= extras_of[key]:
            continue
        extras_of[key] = extras_of.get(key, frozenset()) | extras
        dist = metadata.distribution(name)
        for req in map(Requirement, dist.requires or []):
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras_of[key]}):
                todo.append((req.name, frozenset(req.extras)))
        site = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top not in ("..", "__pycache__") and not top.endswith(".pth") and not (directory / top).exists():
                (directory / top).symlink_to(site / top)
    return directory


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """The no-torch wheelhouse of this machine with the demo and report extras (`make wheelhouse-no-torch
    EXTRAS="demo report"`), in the checkout's git-ignored wheelhouse/: built from PyPI the first time, then only
    the project's own wheel is rebuilt (seconds)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "wheelhouse.py"),
            "build",
            "--sets",
            "no-torch",
            "--extras",
            "demo report",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if "/no-torch:" in ln]
    return Path(line.split(":")[0])


@pytest.mark.long  # a venv, two pip installs from the wheelhouse and three plans in it: ~35 s of CPU
def test_offline_install_from_the_no_torch_wheelhouse_plans_the_demo(wheelhouse, tmp_path):
    """A fresh venv that sees only a node's PyTorch stack installs the project with pip's index switched off,
    every requirement from the wheelhouse, keeps the node's torch, and plans: the core install refuses the
    default target without the report extra (and plans `package`), the extras then plan the demo."""
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
    assert not [w for w in wheels if re.match(r"(torch|torchvision|triton|nvidia_|cuda_)", w)], wheels
    venv = tmp_path / "venv"
    # --without-pip: this venv's pip installs into it (pip --python); the machine's own base Python has unrelated
    # packages in its site-packages, so the node's is the stand-in above, added by a .pth file
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "node_pytorch.pth").write_text(f"{node_site(tmp_path / 'node-site')}\n")
    py = venv / "bin" / "python"
    # nothing from this process's path: a workflow loaded in-process (tests/test_envs.py) puts src/ on PYTHONPATH
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def install(*what: str) -> None:
        cmd = [sys.executable, "-m", "pip", "--python", str(py), "--isolated", "install", "-q", "--no-compile"]
        cmd += ["--no-index", "--find-links", str(wheelhouse), *what]
        proc = subprocess.run(cmd, capture_output=True, env=clean)
        assert proc.returncode == 0, proc.stderr.decode()[-4000:]

    install("gendistill")  # the core, as a compute node installs it
    names = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert "gendistill" in names and "snakemake" in names and not names & {"torch", "torchvision", "numpy", "pillow"}
    where = subprocess.run(
        [py, "-c", "import torch, gendistill; print(torch.__file__); print(gendistill.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=clean,
    ).stdout.split()
    assert "node-site" in where[0] and Path(where[1]).is_relative_to(site)

    wf = tmp_path / "wf"  # the workflow without src/: the installed package is what runs
    wf.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, wf / name)
    for name in ("workflow", "envs", "configs"):
        shutil.copytree(REPO / name, wf / name)

    def plan(config: str, *targets: str) -> subprocess.CompletedProcess:
        cmd = [venv / "bin" / "snakemake", *targets, "-n", "--quiet", "all", "--cores", "1", "--configfile", config]
        return subprocess.run(cmd, cwd=wf, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean)

    names_cfg = wf / "names.yaml"
    names_cfg.write_text(
        "dataset: {name: classlist, class_names: [cat, dog], image_size: 32}\nmodel: {tiny: {seed: 0}}\n"
        "generation: {resolution: 32}\n"
    )
    refused = plan(str(names_cfg))
    assert refused.returncode != 0 and "the report needs matplotlib" in refused.stdout, refused.stdout[-3000:]
    dataset_only = plan(str(names_cfg), "package")
    assert dataset_only.returncode == 0, dataset_only.stdout[-3000:]

    install("-r", str(wheelhouse / "requirements.txt"))  # + the demo and report extras
    demo = plan("configs/demo.yaml")
    assert demo.returncode == 0, demo.stdout[-3000:]
    assert not (wf / "src").exists()
