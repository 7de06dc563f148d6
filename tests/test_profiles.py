"""The profiles shipped in profiles/ are read by Snakemake's own profile parser: a key it cannot turn into command
line arguments (a resource entry left empty, say) fails every run through that profile before any job."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO

PROFILES = sorted(p for p in (REPO / "profiles").iterdir() if (p / "config.yaml").is_file())


def test_there_are_profiles():
    assert {p.name for p in PROFILES} >= {"slurm", "local", "default"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_snakemake_turns_each_profile_into_arguments(profile: Path):
    from snakemake.profiles import ProfileConfigFileParser

    with open(profile / "config.yaml") as f:
        args = ProfileConfigFileParser().parse(f)
    assert args, f"{profile}: no settings read"
    raw = yaml.safe_load((profile / "config.yaml").read_text())
    for key, value in (raw.get("set-resources") or {}).items():
        assert isinstance(value, dict), f"{profile}: set-resources.{key} must be a mapping (or {{}})"
