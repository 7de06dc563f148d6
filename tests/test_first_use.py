"""What a newcomer meets first: the README's commands and snippet, the docs site's generated configuration page,
the messages of a first config, the prompt table before a model is in place, the command line's help, and a test
run on a login node without sudo."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SNAKEMAKE, TINY_CONFIG, deep_update, run_snakemake, write_config

from gendistill.config import load_schema
from gendistill.schema_docs import render

README = (REPO / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    return [b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith("python")]


# --- the front page and the docs site


def test_the_readme_is_a_front_page_that_starts_with_the_two_setup_commands():
    assert len(README.splitlines()) <= 250
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]
    for heading in ("## Install", "## Quick start", "## The paper's job on one GPU", "## On SLURM"):
        assert heading in README, heading
    assert "## Your own classes and prompts" in README and "## Citing" in README
    assert (REPO / "LICENSE").is_file() and (REPO / "CITATION.cff").is_file()


def test_every_page_the_readme_links_exists():
    import re

    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def test_the_configuration_page_is_the_schema_rendered():
    page = (REPO / "docs" / "configuration.md").read_text()
    assert page == render(load_schema()), (
        "docs/configuration.md is stale: make docs (or python -m gendistill.schema_docs)"
    )
    for key in ("generation.n_generated", "evaluation.protocol", "dataset.classes"):
        assert f"| `{key}` |" in page, key


@pytest.mark.workflow
def test_the_readmes_loading_snippet_loads_a_packaged_set(tiny_run):
    snippet, _ = python_blocks(README)
    scope = {}
    exec(snippet.replace("results/demo/", str(tiny_run / "results" / "t") + "/"), scope)
    data, train_set = scope["d"], scope["train_set"]
    assert len(train_set) == len(data["labels"]) == 18
    image, label = train_set[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label.dtype == torch.int64


@pytest.mark.workflow
def test_the_readmes_export_commands_write_what_its_snippet_loads(tiny_run, tmp_path, monkeypatch):
    """The README's three `gendistill export` lines run on the tiny run, then its snippet loads what they wrote."""
    block = next(b.split("```")[0] for b in README.split("```bash\n")[1:] if "gendistill export" in b)
    commands = [line.split("#")[0].split() for line in block.splitlines() if "gendistill export" in line]
    assert [c[c.index("--format") + 1] for c in commands] == ["challenge", "ddranking", "hf"]
    monkeypatch.chdir(tmp_path)
    for c in commands:
        args = [str(tiny_run / "results" / "t") if a == "results/demo" else a for a in c[1:]]
        proc = subprocess.run([sys.executable, "-m", "gendistill", *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    _, snippet = python_blocks(README)
    scope = {}
    exec(snippet, scope)
    assert scope["images"].shape == (18, 3, 32, 32) and scope["hard"].tolist() == [0] * 6 + [1] * 6 + [2] * 6
    ds = scope["ds"]
    assert len(ds) == 18 and ds.features["label"].names[ds[0]["label"]] == "zero"


# --- messages of a first config


def dry_run(tmp_path, config: dict, *targets: str) -> subprocess.CompletedProcess:
    return run_snakemake(tmp_path, config, "-n", check=False, targets=targets)


@pytest.mark.workflow
def test_a_config_error_is_printed_once_without_snakemakes_traceback(tmp_path):
    bad = deep_update(TINY_CONFIG, {"generation": {"n_generatd": 3}, "evaluation": {"seeds": 3}})
    proc = dry_run(tmp_path, bad)
    assert proc.returncode != 0
    err = proc.stderr
    assert "generation.n_generatd: unknown key; did you mean n_generated?" in err, err
    assert "evaluation.seeds: 3 is an integer; this key takes a list. Fix: e.g. `seeds: [0, 1, 2]`." in err, err
    assert err.count("n_generatd") == 1 and "common.smk" not in err and "Traceback" not in err, err


@pytest.mark.workflow
def test_the_prompt_table_needs_no_model_but_sampling_does(tmp_path):
    """`snakemake prompts` reviews the prompts before the model is in place; any target that samples is refused,
    naming model.source and how to get it."""
    cfg = deep_update(TINY_CONFIG, {"model": {"tiny": None, "source": str(tmp_path / "models" / "not-yet")}})
    proc = run_snakemake(tmp_path, cfg, targets=("prompts",))
    assert (tmp_path / "results" / "t" / "prompts.csv").read_text().startswith("index,name,id,prompt,seed")
    proc = dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "model.source: local directory" in proc.stderr and "hf download" in proc.stderr, proc.stderr
    assert "common.smk" not in proc.stderr, proc.stderr


@pytest.mark.workflow
def test_a_target_named_after_configfile_is_read_as_a_config_file(tmp_path):
    """Why the docs put the target first: Snakemake's --configfile takes several files, so a target after it is
    read as one more config file."""
    cfg = write_config(tmp_path, TINY_CONFIG)
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "--configfile", str(cfg), "prompts"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "prompts" in proc.stdout + proc.stderr
    for page in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        for line in page.read_text().splitlines():
            if "--configfile" in line and "snakemake" in line:
                after = line.split("--configfile", 1)[1].split("#", 1)[0].split()
                assert not any(word in ("prompts", "package", "results_table") for word in after), (page, line)


# --- the command line


def gendistill(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "gendistill", *args], capture_output=True, text=True, env=env)


def test_help_lists_the_users_commands_apart_from_the_jobs():
    out = gendistill("--help").stdout
    commands = out.split("commands:", 1)[1].split("Commands the workflow", 1)[0]
    for user in ("time-budget", "regenerate", "sampler-stop"):
        assert user in commands
    for job in ("sample", "augment", "build-tiny-model", "write-prompts", "sampler-serve"):
        assert f"\n    {job} " not in commands and f"\n    {job}\n" not in commands, job
    assert "Commands the workflow's jobs run (not meant to be typed): sample, augment" in " ".join(out.split())


def test_time_budget_options_have_help_and_their_defaults():
    out = " ".join(gendistill("time-budget", "--help").stdout.split("options:", 1)[1].split())
    for option, default in (("--repeats", "2"), ("--warmup-batches", "1"), ("--safety", "0.9")):
        text = out.split(f"{option} {option.lstrip('-').upper().replace('-', '_')}", 1)[1].split(" --", 1)[0]
        assert f"(default: {default})" in text and len(text) > 30, (option, text)
    assert "(default: None)" not in out


def test_regenerate_on_a_missing_run_says_what_to_give(tmp_path):
    proc = gendistill("regenerate", str(tmp_path / "results" / "nope"), "000_zero/0000_0.png")
    assert proc.returncode == 2
    assert "is not a packaged run" in proc.stderr and "results/<run>" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- a login node without sudo


def test_make_test_installs_no_browser_when_told_not_to(tmp_path):
    """`GENDISTILL_SKIP_BROWSER=1 make test` on a machine without Chromium and without sudo: the Makefile's browser
    step does nothing (no apt-get, no sudo), instead of failing."""
    recipe = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True).stdout
    step = next(line for line in recipe.splitlines() if "ensure_chromium" in line)
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"  # the only PATH: a shell, id, and a sudo and apt-get that record being called
    bin_dir.mkdir()
    for tool in ("bash", "id"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    for tool in ("sudo", "apt-get"):
        (bin_dir / tool).write_text(f"#!/bin/sh\necho {tool} >> {calls}\n")
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    skipped = subprocess.run(step, shell=True, cwd=REPO, env={**env, "GENDISTILL_SKIP_BROWSER": "1"}, text=True)
    assert skipped.returncode == 0 and not calls.exists()
    # the control: without the switch the same step does try to install it
    subprocess.run(step, shell=True, cwd=REPO, env=env, text=True, capture_output=True)
    assert calls.exists()
