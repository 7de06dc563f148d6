"""Tier 1: every list of generator families and datasets derives from its registry, or fails here.

A family is one module of gendistill.families (its facts, adapter and tiny builder); a dataset is one adapter of
gendistill.datasets. What else names them (the config schema's enums, the example configs and their
architecture configs, the docs' tables) must agree with the registries.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys

import yaml
from conftest import REPO, TINY_CONFIG

import gendistill.families as families
from gendistill.datasets import ADAPTERS as DATASETS
from gendistill.datasets import DatasetAdapter
from gendistill.families import BY_NAME, BY_PIPELINE, FAMILIES
from gendistill.families.base import Adapter

SCHEMA = yaml.safe_load((REPO / "src" / "gendistill" / "schemas" / "config.schema.yaml").read_text())
DOCS = REPO / "docs"


def docs_table_names(page: str) -> set[str]:
    """The backticked names in the first column of the first table of the docs page `page` (docs/<page>.md)."""
    text = (DOCS / f"{page}.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    first_cells = [line.split("|")[1] for line in table[2:]]  # below the header and its separator
    return {name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}


def enum(*keys: str) -> list:
    node = SCHEMA
    for key in keys:
        node = node["properties"][key]
    return node["enum"]


# ---- generator families -------------------------------------------------------------------------------------


def test_every_module_of_the_families_package_is_a_family_or_shared_machinery():
    modules = {m.name for m in pkgutil.iter_modules(families.__path__)}
    assert set(families.SHARED_MODULES) <= modules
    for name in sorted(modules - set(families.SHARED_MODULES)):
        module = importlib.import_module(f"gendistill.families.{name}")
        assert module.FAMILIES and all(f in FAMILIES for f in module.FAMILIES), name


def test_each_family_has_one_name_its_own_pipeline_classes_an_adapter_and_a_tiny_builder():
    assert len(BY_NAME) == len(FAMILIES)
    assert len(BY_PIPELINE) == sum(len(f.pipelines) for f in FAMILIES)  # no pipeline class served twice
    for f in FAMILIES:
        assert f.pipelines and issubclass(f.adapter, Adapter) and f.adapter is not Adapter, f.name
        assert callable(f.build_tiny) and f.conditioning in ("text", "class"), f.name


def test_the_schemas_family_enum_is_the_registry():
    names = enum("model", "tiny", "family")
    assert len(names) == len(set(names)) and set(names) == set(BY_NAME)


def test_the_docs_list_every_family():
    assert docs_table_names("generators") == set(BY_NAME)


def test_example_configs_and_architecture_configs_are_the_families():
    """configs/models/<stem>.yaml and benchmarks/model_configs/<stem>/ exist for each family's example_config,
    and every example config is one family's (the FLOPs script measures exactly these)."""
    stems = {f.example_config for f in FAMILIES if f.example_config}
    assert stems == {p.stem for p in (REPO / "configs" / "models").glob("*.yaml")}
    for stem in stems:
        assert (REPO / "benchmarks" / "model_configs" / stem / "model_index.json").is_file(), stem
    assert {f.name for f in FAMILIES if not f.example_config} == {"sana"}  # SANA-Sprint's example stands for it


def test_the_plan_imports_neither_torch_nor_diffusers():
    """The plan (Snakemake's DAG) reads the families' facts from JSON configs: importing their modules must not
    pull in the heavy libraries their adapters and builders use."""
    probe = (
        "import json, sys; from gendistill.plan import build_plan; import gendistill.families.facts; "
        "build_plan(json.loads(sys.argv[1])); "
        "print(json.dumps(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)))"
    )
    cfg = {**TINY_CONFIG, "results_dir": "unused"}
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(cfg)], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert json.loads(out.stdout) == []


# ---- datasets -----------------------------------------------------------------------------------------------


def test_the_schemas_dataset_enum_is_the_registry():
    names = enum("dataset", "name")
    assert len(names) == len(set(names)) and set(names) == set(DATASETS)
    assert all(issubclass(a, DatasetAdapter) and name == a.name for name, a in DATASETS.items())


def test_dataset_adapters_that_stream_list_their_files():
    """The evaluation reads `streams` and `files` of any adapter: the base class declares both, and an adapter that
    streams implements `files`."""
    assert DatasetAdapter.streams is False
    for name, adapter in DATASETS.items():
        assert isinstance(adapter.streams, bool), name
        assert not adapter.streams or adapter.files is not DatasetAdapter.files, name


def test_the_docs_list_every_dataset():
    assert docs_table_names("datasets") == set(DATASETS)
