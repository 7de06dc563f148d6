"""RunLayout, the one definition of where a run's files live: every path it defines is under the run's directory,
and no two stages share a path (the rules take their outputs from it, so a clash here is two rules writing one
file, or one rule's wildcards matching another's files). The paths are found by walking the class, so a path
added later is checked too."""

from __future__ import annotations

import inspect
import re

from gendistill.layout import RunLayout, SetLayout

ROOT = "results/run"


def _paths(obj, name: str = "", value: str | None = None) -> dict[str, str]:
    """{name: path} of every property of `obj` (a RunLayout or SetLayout) and every method whose arguments all
    have defaults (the wildcards), called with those or, given `value`, with `value` for every argument."""
    out = {}
    for attr, member in vars(type(obj)).items():
        if attr.startswith("_"):
            continue
        if isinstance(member, property):
            got = getattr(obj, attr)
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters.values())[1:]
            if any(p.default is inspect.Parameter.empty for p in params):
                continue  # results(name): its named files are properties (summary, ...)
            got = member(obj, *([value] * len(params) if value is not None else []))
        else:
            continue
        key = f"{name}{attr}"
        if isinstance(got, SetLayout):
            out.update(_paths(got, f"{key}.", value))
        elif isinstance(got, str):
            out[key] = got
    return out


def _pattern(path: str) -> re.Pattern:
    """What a Snakemake output with these {wildcards} matches (a wildcard: one path component or part of one)."""
    parts = re.split(r"(\{[a-z_]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def test_every_path_is_under_the_run_and_no_two_stages_share_one():
    paths = _paths(RunLayout(ROOT))
    assert {"teacher", "selected", "ablation_metrics", "teacher_ablation_set.distilled", "recogniser"} <= set(paths)
    for name, p in paths.items():
        assert p.startswith(ROOT + "/") and "//" not in p and not p.endswith("/"), (name, p)
    assert len(set(paths.values())) == len(paths), "two names for one path"
    for a, pa in paths.items():
        for b, pb in paths.items():
            if a != b:
                assert not pb.startswith(pa + "/"), f"{b} ({pb}) lies inside {a} ({pa})"


def test_no_stages_wildcards_match_another_stages_files():
    patterns = _paths(RunLayout(ROOT))
    concrete = _paths(RunLayout(ROOT), value="x")
    for a, pattern in patterns.items():
        regex = _pattern(pattern)
        for b, path in concrete.items():
            if a != b:
                assert not regex.fullmatch(path), f"{a} ({pattern}) matches {b}'s file {path}"
        assert regex.fullmatch(concrete[a]), (a, pattern, concrete[a])


def test_each_argument_reaches_the_path():
    """A method's arguments (class, variant, model, seed, ...) each pick a different file."""
    run = RunLayout(ROOT)
    for attr, member in vars(RunLayout).items():
        if attr.startswith("_") or not inspect.isfunction(member):
            continue
        names = list(inspect.signature(member).parameters)[1:]
        for i in range(len(names)):
            a = ["a"] * len(names)
            b = ["a"] * len(names)
            b[i] = "b"
            pa, pb = member(run, *a), member(run, *b)
            if isinstance(pa, SetLayout):
                pa, pb = pa.dir, pb.dir
            assert pa != pb, f"{attr}: argument {names[i]} does not change the path"
