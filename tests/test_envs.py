"""The pins (pyproject.toml, the lock constraints.txt), the conda environments (envs/*.yaml) against them, and
every rule's `conda:` directive.

pyproject.toml pins every direct dependency exactly except the PyTorch stack (ranges, so that a compute node's own
PyTorch installs); the lock pins every distribution the project and its extras install, and `make` installs with
it. `snakemake --sdm conda` builds one environment per file in envs/. These tests check that the lock is complete
and agrees with pyproject.toml and with this venv, that the env files cannot drift from the lock, that every rule
with a job names an existing env file, and (tier 3) that each stage's env holds every third-party package its jobs
really import: the session's shared workflow runs trace every process they start (conftest.traced), and each
job's imports must lie in the dependency closure of its rule's env.
"""

from __future__ import annotations

import json
import re
import sys
import time
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
import yaml
from conftest import REPO, TRACE_DIR
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ENV_DIR = REPO / "envs"
ENV_FILES = sorted(ENV_DIR.glob("*.yaml"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK = REPO / "constraints.txt"
# pyproject.toml gives these ranges (a node's own PyTorch, with its torchvision's numpy and pillow); the lock pins them
PYTORCH_STACK = {"torch", "torchvision", "numpy", "pillow"}
# conda-forge names that differ from the PyPI name (normalised PyPI name on the right)
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}  # the interpreter and the installer: conda entries, not pyproject deps


def norm(name: str) -> str:
    """PEP 503 name normalisation: Pillow, pillow and PILLOW, huggingface_hub and huggingface-hub are one name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def exact_pin(spec: str, where: str) -> tuple[str, str]:
    req = Requirement(spec)
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
        f"{where}: {spec!r} is not an exact pin (name==version)"
    )
    return norm(req.name), specs[0].version


@cache
def lock_pins() -> dict[str, str]:
    """{name: version} of every distribution in the lock, constraints.txt."""
    lines = [ln.split("#", 1)[0].strip() for ln in LOCK.read_text().splitlines()]
    pins = [exact_pin(ln, LOCK.name) for ln in lines if ln]
    assert len(dict(pins)) == len(pins), f"{LOCK.name}: a distribution is pinned twice"
    return dict(pins)


def parse_conda_spec(spec: str) -> tuple[str, str | None]:
    """'python=3.11', 'numpy==2.4.6', 'numpy 2.4.6', 'conda-forge::numpy=2.4.6' or 'pip' -> (name, version)."""
    spec = spec.split("::")[-1].strip()
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:(==?|\s)\s*([^\s=<>!,*]+))?", spec)
    assert m, f"cannot read conda spec {spec!r} (use name=version)"
    return m.group(1), m.group(3)


def read_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and isinstance(env.get("dependencies"), list), f"{path}: no dependencies list"
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path}: unknown dependency section {set(dep)}"
            for spec in dep["pip"]:
                name, version = exact_pin(spec, f"{path.name} pip:")
                assert name not in pip, f"{path.name}: {name} twice under pip:"
                pip[name] = version
        else:
            name, version = parse_conda_spec(str(dep))
            conda[norm(CONDA_TO_PYPI.get(name.lower(), name))] = version
    return {"channels": env.get("channels") or [], "conda": conda, "pip": pip}


def _rules_of(configfiles: list[Path]) -> list:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=configfiles),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )
        return list(wf._workflow.rules)


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory):
    """The rules of the real Snakefile, loaded in-process: the demo config (the fitted-model rule) and the demo
    with the tiny random-weight model (the tiny-model rule); the other rules are the same in both."""
    tiny = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"model": {"tiny": {"seed": 0}, "fitted": None}}))
    rules = {}
    for files in ([REPO / "configs" / "demo.yaml"], [REPO / "configs" / "demo.yaml", tiny]):
        rules.update({r.name: r for r in _rules_of(files) if r.name not in rules})
    assert set(rules) >= {
        "sample",
        "augment",
        "package",
        "evaluate",
        "build_tiny_model",
        "fit_model",
        "recognition_classifier",
        "recognise",
        "ablation_package",
        "ablation_table",
    }
    return [r for r in rules.values() if not r.norun]  # `rule all` runs nothing and needs no env


def rule_env(rule) -> Path:
    assert rule.conda_env, f"rule {rule.name} ({rule.snakefile}) has no conda: directive"
    return (Path(rule.snakefile).parent / rule.conda_env).resolve()


def test_pyproject_pins_every_dependency_exactly_but_the_pytorch_stack():
    names = [norm(Requirement(d).name) for d in PYPROJECT["dependencies"]]
    assert len(set(names)) == len(names), "a dependency is listed twice"
    assert PYTORCH_STACK <= set(names)
    for d in PYPROJECT["dependencies"]:
        req = Requirement(d)
        if norm(req.name) in PYTORCH_STACK:
            assert not any(s.operator == "==" for s in req.specifier) and req.specifier, (
                f"pyproject.toml: {d!r}: the PyTorch stack takes a range (a node's own PyTorch), the lock its pin"
            )
        else:
            exact_pin(d, "pyproject.toml [project] dependencies")
    for extra, deps in PYPROJECT["optional-dependencies"].items():
        for d in deps:
            exact_pin(d, f"pyproject.toml extra [{extra}]")


def test_lock_pins_every_requirement_at_a_version_pyproject_admits():
    pins = lock_pins()
    every = PYPROJECT["dependencies"] + [d for deps in PYPROJECT["optional-dependencies"].values() for d in deps]
    for d in every:
        req = Requirement(d)
        name = norm(req.name)
        assert name in pins, f"{LOCK.name}: {name} is not pinned (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside pyproject.toml's {d!r}"
        )


def test_this_venv_is_the_lock():
    """What `make` installed is what the lock says: every distribution the project and its installed extras
    require (dev, demo, report), at the lock's version; the lock holds nothing pip would not install."""
    env = default_environment()
    seen, todo = set(), [("gendistill", frozenset({"dev", "demo", "report"}))]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for r in map(Requirement, metadata.requires(name) or []):
            if r.marker is None or any(r.marker.evaluate({**env, "extra": e}) for e in {"", *extras}):
                todo.append((norm(r.name), frozenset(r.extras)))
    needed = {n for n, _ in seen} - {"gendistill"}
    pins = lock_pins()
    wrong = {n: (metadata.version(n), pins.get(n)) for n in needed if pins.get(n) != metadata.version(n)}
    assert not wrong, f"installed vs {LOCK.name}: {wrong} (make: pip install -c constraints.txt)"
    # the slurm extra is installed by `make test-slurm` only: its plugin and what only the plugin requires
    slurm_only = {"snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep"}
    extra = set(pins) - needed - slurm_only
    assert not extra, f"{LOCK.name} pins what nothing requires: {sorted(extra)} (make lock)"


def test_slurm_executor_is_an_optional_exactly_pinned_extra():
    (spec,) = PYPROJECT["optional-dependencies"]["slurm"]
    name, _ = exact_pin(spec, "pyproject.toml extra [slurm]")
    assert name == "snakemake-executor-plugin-slurm"
    assert not any(
        norm(Requirement(d).name).startswith("snakemake-executor-plugin") for d in PYPROJECT["dependencies"]
    ), "the executor plugin must not be a core dependency"


def test_env_files_exist_and_parse():
    assert ENV_FILES, "no conda environments in envs/"
    for path in ENV_FILES:
        env = read_env(path)
        assert "conda-forge" in env["channels"], f"{path.name}: name the conda-forge channel"
        assert env["pip"] or len(env["conda"]) > 2, f"{path.name}: no packages"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_agree_with_the_lock(path):
    pins, env = lock_pins(), read_env(path)
    both = set(env["conda"]) & set(env["pip"])
    assert not both, f"{path.name}: {sorted(both)} both as conda and pip packages"
    for name, version in {**env["conda"], **env["pip"]}.items():
        if name in NOT_PACKAGES:
            continue
        assert name in pins, f"{path.name}: {name} is not in the lock (add it to pyproject.toml, then make lock)"
        assert version is not None, f"{path.name}: {name} is not pinned (the lock pins {pins[name]})"
        assert Version(version) == Version(pins[name]), (
            f"{path.name}: {name}=={version} but {LOCK.name} pins {name}=={pins[name]}"
        )


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_python_satisfies_requires_python(path):
    version = read_env(path)["conda"].get("python")
    assert version, f"{path.name}: pin python (e.g. python=3.11)"
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(version + ".0"), (
        f"{path.name}: python {version} is outside requires-python {PYPROJECT['requires-python']}"
    )
    assert "pip" in read_env(path)["conda"], f"{path.name}: list pip as a conda package (it installs the pip: section)"


def test_every_rule_names_an_existing_env_and_every_env_is_used(workflow_rules):
    used = set()
    for rule in workflow_rules:
        path = rule_env(rule)
        assert path.is_file(), f"rule {rule.name}: conda env {rule.conda_env} -> {path} does not exist"
        assert path.parent == ENV_DIR, f"rule {rule.name}: env {path} is not in envs/"
        used.add(path.name)
    assert used == {p.name for p in ENV_FILES}, f"env files no rule uses: {sorted({p.name for p in ENV_FILES} - used)}"


def test_each_env_file_names_the_rules_that_use_it(workflow_rules):
    """An env file's first line lists the rules whose `conda:` names it, no more and no fewer (it is how a reader
    finds what runs in it; a renamed or removed rule must not stay listed)."""
    for path in ENV_FILES:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# Conda environment of the rules: ") and first.endswith("."), (path.name, first)
        listed = first.removeprefix("# Conda environment of the rules: ").removesuffix(".").split(", ")
        using = sorted(r.name for r in workflow_rules if rule_env(r) == path.resolve())
        assert sorted(listed) == using, f"{path.name}: lists {sorted(listed)}, used by {using}"


def test_gpu_is_declared_by_sampling_and_by_the_evaluation_where_it_trains_on_gpus(workflow_rules):
    """The profiles rely on it: `gpu` is the sampling rules' resource (local --resources gpu=N; SLURM --gpus), and
    the evaluation's where it trains on GPUs (evaluate: evaluation.processes of them; kd_cache: one; on a cluster
    they ask with --gres instead, which the profile's per-submission gpu limit does not count): the rules that
    declare it are those that run `gendistill sample`, and evaluate and kd_cache, which ask for none here (no GPU
    visible, a local run)."""
    gpu_rules = {r.name: r for r in workflow_rules if "gpu" in r.resources}
    sampling = {
        r.name for r in workflow_rules if not r.is_script and re.search(r"-m gendistill\s+sample\s", r.shellcmd)
    }
    assert sampling and set(gpu_rules) == sampling | {"evaluate", "kd_cache"}
    for name in ("evaluate", "kd_cache"):  # functions: the executor is known only when the DAG is built
        gpu, gres = gpu_rules[name].resources["gpu"], gpu_rules[name].resources["gres"]
        assert gpu.is_evaluable() and gres.is_evaluable(), name
        assert gpu.evaluate(None).value == 0 and gres.evaluate(None).value == "", name


# ---- tier 3: the envs hold what the jobs import -------------------------------------------------------------

# Imported only because this venv happens to have them; the importers fall back when they are absent.
OPTIONAL_IMPORTS = {
    "tabulate": "torch._dynamo.utils.tabulate: try: import tabulate / except ImportError (plain text instead)",
    "rich": "accelerate, transformers, scikit-learn progress bars: used only when importable",
    "scipy": "diffusers and transformers: guarded by is_scipy_available() (scikit-learn does require it)",
    # installed for the dev tools and the exports (datasets, mkdocs-material), probed by the core packages
    "pyarrow": "pandas.compat.pyarrow: try: import pyarrow / except ImportError (numpy-backed only)",
    "cloudpickle": "pyarrow's compat: try: import cloudpickle as pickle / except ImportError (pickle)",
    "dill": "torch.utils.data.datapipes: imported only when torch.utils._import_utils.dill_available()",
    "colorama": "torch._inductor.runtime.runtime_utils: try: import colorama / except ModuleNotFoundError",
}


def dependency_closure(names: set[str]) -> set[str]:
    """The installed distributions that `pip install names` pulls in (from this venv's metadata; no extras)."""
    env = {**default_environment(), "extra": ""}
    seen, todo = set(), [norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in map(Requirement, reqs):
            if r.marker is None or r.marker.evaluate(env):
                todo.append(norm(r.name))
    return seen


def test_each_stage_env_provides_what_its_jobs_import(
    tiny_run, ablation_run, teacher_ablation_run, fitted_run, real_data_run, workflow_rules
):
    """The session's shared runs trace every Python process they start (conftest.traced): the tiny run (prompts,
    the tiny model, sampling, augmentation, packaging, evaluation, report items), the PDA ablation on a copy of it
    and the teacher ablation on a copy of that, the fitted stand-in's run (its fit, recognition), and the run that
    uses the real data and the teacher (conftest.REAL_DATA_CONFIG: selection baselines, fidelity, the kd cache, a
    generation method from prototypes). Each job's
    third-party imports must be installed by its rule's env file (or their dependencies), and every rule must have
    run in one of them."""
    traces = [run / TRACE_DIR for run in (tiny_run, ablation_run, teacher_ablation_run, fitted_run, real_data_run)]

    # which rule a traced process belongs to: `gendistill <subcommand>` of shell rules, the script's name
    # (a script or command may serve several rules: a trace counts for each)
    by_cmd, by_script = {}, {}
    for rule in workflow_rules:
        if rule.is_script:
            by_script.setdefault(Path(rule.script).name, []).append(rule.name)  # a script may serve two rules
        else:
            m = re.search(r"-m gendistill\s+([\w-]+)", rule.shellcmd)
            assert m, f"rule {rule.name}: cannot tell its command from {rule.shellcmd!r}"
            by_cmd.setdefault(m.group(1), []).append(rule.name)
    script_rules = {r for names in by_script.values() for r in names}
    env_of = {r.name: rule_env(r) for r in workflow_rules}

    to_dist = metadata.packages_distributions()
    free = {"setuptools", "pip", "gendistill"}  # in every env (setuptools' .pth hook), or src/ itself
    free |= set(OPTIONAL_IMPORTS)
    snakemake_side = dependency_closure({"snakemake"})  # script jobs import it from Snakemake's own install
    deadline, seen_rules, problems = time.time() + 30, set(), []

    def records():
        return sorted(f for trace in traces for f in trace.glob("*.json"))

    while time.time() < deadline and not any("sampler-serve" in p.read_text() for p in records()):
        time.sleep(0.5)  # a sampler process writes its trace when it idles out
    for f in records():
        rec = json.loads(f.read_text())
        argv = rec["argv"]
        rules = None
        if argv and argv[0].endswith(".py") and ".snakemake/scripts" in argv[0]:
            rules = by_script.get(re.sub(r"^tmp[^.]+\.", "", Path(argv[0]).name))
        elif argv[:3] == ["-c", "gendistill", "sampler-serve"]:  # the sampler: python -c <bootstrap> (code.py)
            rules = by_cmd["sample"]
        elif argv[:2] == ["-c", "gendistill"] and len(argv) > 2:  # a job re-executed through it (server: false)
            rules = by_cmd.get(argv[2])
        elif argv and argv[0].endswith("gendistill/__main__.py") and len(argv) > 1:
            rules = by_cmd.get(argv[1])
        if rules is None:
            continue  # Snakemake itself
        for rule in rules:
            seen_rules.add(rule)
            dists = {norm(d) for m in rec["modules"] if m not in sys.stdlib_module_names for d in to_dist.get(m, [])}
            env = read_env(env_of[rule])
            provided = dependency_closure(set(env["pip"]) | set(env["conda"]) - NOT_PACKAGES)
            allowed = provided | free | (snakemake_side if rule in script_rules else set())
            missing = dists - allowed
            if missing:
                problems.append(
                    f"rule {rule} ({' '.join(argv[:2])}) imports {sorted(missing)}, "
                    f"not installed by {env_of[rule].name}"
                )
    assert seen_rules == set(env_of), f"no trace from rules {sorted(set(env_of) - seen_rules)}"
    assert not problems, "\n".join(problems)
