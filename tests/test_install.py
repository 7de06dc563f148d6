"""A non-editable install: the package carries what it reads (the config schema), so a wheel installed away
from the source tree validates configs and plans the workflow."""

from __future__ import annotations

import os
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
