"""The evaluation-model registry drives every list of model names, and evaluation/ and teacher/ import each other
in one direction only (no cycle, none hidden inside a function)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from gendistill.config import load_schema
from gendistill.evaluation import models, networks

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "gendistill"


def test_schema_model_enums_are_the_registry():
    props = load_schema()["properties"]
    names = list(models.MODELS)
    assert props["evaluation"]["properties"]["models"]["items"]["enum"] == names
    assert props["teacher"]["properties"]["model"]["enum"] == names
    assert props["recognition"]["properties"]["model"]["enum"] == names


def test_workflow_model_wildcard_comes_from_the_registry():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert 'model="|".join(EVAL_MODELS)' in common
    assert not re.search(r'model="[a-z0-9_]+\|', common), "a hand-written model list in common.smk"


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_registered_model_builds_and_names_itself(name):
    net = models.build_model(name, 10, 32)
    assert net(networks.torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert models.model_label(name, 32) and models.MODELS[name].description


def test_registry_and_networks_agree_on_the_imagenet_stem():
    assert models.IMAGENET_STEM_FROM == networks.IMAGENET_STEM_FROM


def test_convnet_d3_keeps_depth_3_at_64_px():
    net = models.build_model("convnet_d3", 200, 64)
    assert sum(isinstance(m, networks.nn.Conv2d) for m in net.modules()) == 3
    assert net.classifier.in_features == 128 * 8 * 8  # 64 px / 2^3


def _imports(path: Path, package: str) -> set[str]:
    """gendistill modules imported by a file, at any depth of its code (function-level imports included)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("gendistill"):
                names = [f"{mod}.{a.name}" for a in node.names]
                out |= {n for n in names if _module_file(n)} or {mod}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("gendistill")}
    return {m for m in out if _module_file(m)}


def _module_file(mod: str) -> Path | None:
    parts = mod.split(".")[1:]
    if not parts:
        return SRC / "__init__.py"
    rel = Path(*parts)
    for p in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = mod if parts[-1] == "__init__" else ".".join(parts[:-1])
        graph[mod] = _imports(path, package) - {mod}
    return graph


def test_evaluation_and_teacher_are_in_no_import_cycle():
    graph = _graph()
    ours = [m for m in graph if m.startswith(("gendistill.evaluation", "gendistill.teacher"))]
    assert "gendistill.evaluation.real" in ours and "gendistill.teacher.classifier" in ours

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            for n in graph.get(m, ()):
                if n == goal:
                    return True
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return False

    cycles = [(m, n) for m in ours for n in graph[m] if reaches(n, m)]
    assert not cycles, f"import cycles through evaluation/ or teacher/: {cycles}"
    # the shared real-data training sits below both users
    assert "gendistill.evaluation.real" in graph["gendistill.teacher.classifier"]
    assert not any(
        n.startswith(("gendistill.teacher", "gendistill.evaluate"))
        for n in _closure(graph, "gendistill.evaluation.real")
    )
    # teacher/ trains with evaluation/'s modules, so no evaluation/ module may import teacher/ (an arrow back up):
    # the evaluation job, which needs both, is gendistill.evaluate, above them
    upward = {(m, n) for m in ours if m.startswith("gendistill.evaluation") for n in graph[m] if ".teacher" in n}
    assert not upward, f"evaluation/ modules that import teacher/: {sorted(upward)}"


def _closure(graph, start):
    seen, todo = set(), [start]
    while todo:
        for n in graph.get(todo.pop(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_the_registry_imports_no_torch():
    """The workflow reads the model names when it builds the DAG, which imports no torch."""
    import subprocess
    import sys

    code = "import sys; import gendistill.evaluation.models as m; print('torch' in sys.modules, len(m.MODELS))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC.parent)}, check=True
    )
    assert out.stdout.split() == ["False", str(len(models.MODELS))]
