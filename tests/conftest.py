"""Shared test helpers: run the workflow on tiny configs in a temporary directory."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

# The suite runs pytest-xdist workers whose workflows' jobs each use up to 2 threads: more threads than cores.
# Busy-waiting OpenMP threads then take the cores from each other; passive waiting made a contended pair (a tiny
# workflow beside a 3-fit test) 20-25 % faster in wall time and ~30 % lower in CPU time (measured). Every process the
# tests start inherits it; set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
sys.path.insert(0, str(REPO / "src"))

# A tiny, fast config: the digits dataset bundled with scikit-learn, 3 classes, random-weight tiny model.
# No class recognition (a classifier trained per run; tests/test_fitted.py covers it with the fitted generator).
# A training recipe small enough for a unit test (the evaluation's recipe keys, two epochs).
TINY_RECIPE = {
    "epochs": 2,
    "batch_size": 8,
    "lr": 0.01,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "step",
    "train_augment": True,
}


TINY_CONFIG = {
    "run": "t",
    "seed": 0,
    "dataset": {"name": "digits", "classes": [0, 1, 2]},
    "model": {"tiny": {"seed": 0}},
    "generation": {"n_generated": 2, "resolution": 32, "server_idle_seconds": 60},
    "augmentation": {"n_aug": 2},
    "evaluation": {
        "models": ["convnet"],
        "seeds": [0],
        "epochs": 2,
        "batch_size": 32,
        "baselines": {"random_subset": False, "full": False},
        "max_test_images": 200,
    },
    "recognition": {"activate": False},
}


# Tiers (pyproject.toml markers; `make test-fast` runs what is neither): a test that uses a whole workflow run
# is `workflow`; one that starts sampler processes or builds and runs a diffusion pipeline is `slow`, whatever
# file it is in. Tests that do so without these fixtures carry the marker themselves.
WORKFLOW_FIXTURES = {"tiny_run", "fitted_run", "ablation_run"}
SLOW_FIXTURES = {"private_runtime", "tiny_model_dir", "pipe"}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & WORKFLOW_FIXTURES:
            item.add_marker(pytest.mark.workflow)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
    items[:] = start_order(items)


def start_order(items: list) -> list:
    """The order that keeps both of `make test`'s workers busy from the start. pytest-xdist's worksteal gives the
    first worker the first half of the list and the second the rest (then moves tests from the longer queue to an
    idle worker). So the first half opens with the tests of the fitted run (its fit, about a minute, is the
    suite's longest single build), then the other slow tests; the second half opens with the tests of the tiny and
    ablation runs, the suite's other shared builds. Neither worker then waits at the start for a run the other
    is building, and the quick unit tests come last, where they fill the gaps. Within each group the collection
    order is kept."""

    def uses(item, names):
        return bool(set(getattr(item, "fixturenames", ())) & names)

    def heavy(item):
        return item.get_closest_marker("workflow") or item.get_closest_marker("slow")

    shared = [i for i in items if uses(i, {"tiny_run", "ablation_run"})]
    shared.sort(key=lambda i: uses(i, {"fitted_run"}))  # the test that reads all three runs last
    fitted = [i for i in items if uses(i, {"fitted_run"}) and i not in shared]
    rest = [i for i in items if i not in shared and i not in fitted]
    first = fitted + [i for i in rest if heavy(i)]
    light = [i for i in rest if not heavy(i)]
    cut = max(0, len(items) // 2 - len(first))
    return first + light[:cut] + shared + light[cut:]


def deep_update(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_config(workdir: Path, config: dict, name: str = "config.test.yaml") -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(
    workdir: Path,
    config: dict,
    *args: str,
    check: bool = True,
    timeout: int = 900,
    env: dict | None = None,
    targets: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with `config` in `workdir`; returns the completed process (text output).
    `targets`: files to make instead of the default target (before the options, which take several values)."""
    cfg = write_config(workdir, config)
    cmd = [
        SNAKEMAKE,
        *targets,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


DOT_JOB = re.compile(r'^\s*\d+\[label = "(?P<label>[^"]*)", color = "[^"]*", style="(?P<style>[^"]*)"\];$', re.M)


def planned_jobs(dag_output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of each job that would run, from `snakemake --dag` (Graphviz DOT: one node per job of
    the DAG, labelled `rule\\nname: value...`; a job that need not run is drawn dashed)."""
    assert dag_output.lstrip().startswith("digraph"), "not `snakemake --dag` output (run with --dag, not -n)"
    jobs = []
    for m in DOT_JOB.finditer(dag_output):
        if "dashed" not in m["style"]:
            rule, *fields = m["label"].split("\\n")
            jobs.append((rule, dict(f.split(": ", 1) for f in fields)))
    return jobs


def job_counts(dag_output: str) -> dict[str, int]:
    """{rule: jobs that would run} from `snakemake --dag`; empty when there is nothing to do. A rule that serves
    the run and its ablations counts the ablations' jobs under its scope: `ablation/sample` (the ablations' pool),
    `ablation/evaluate`, `ablation/teacher/select` (gendistill.layout's scopes)."""
    counts = {}
    for rule, wildcards in planned_jobs(dag_output):
        name = f"{wildcards.get('scope', '')}{rule}"
        counts[name] = counts.get(name, 0) + 1
    return counts


# The test session's samplers live in a runtime directory of its own (every workflow run it starts inherits
# it), so the tests never reach, nor stop, samplers of the user's real runs.
RUNTIME_DIR = Path(tempfile.mkdtemp(prefix="gendistill-test-run-"))
os.environ["XDG_RUNTIME_DIR"] = str(RUNTIME_DIR)


@pytest.fixture(scope="session", autouse=True)
def stop_samplers_at_end():
    """Sampler processes outlive their jobs by design; stop this session's at the end of the test run."""
    yield
    from gendistill.sampling.client import stop_samplers

    stop_samplers(directory=RUNTIME_DIR / "gendistill")
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """`<session dir>/<name>`, made by `build(dir)` once per test session, however many pytest-xdist workers
    ask: the first takes a lock and builds, the others wait for it and reuse the result. Under xdist each worker
    has its own base temp directory; their common parent is the session's. A build that fails leaves no marker,
    so the next worker that asks builds again (and fails on its own)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    target, marker = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            build(target)
            marker.touch()
    return target


# Import tracing, for tests/test_envs.py (each stage's conda env holds what its jobs import): the session's shared
# runs (tiny_run, ablation_run, fitted_run) record, for every Python process they start, the top-level modules it
# imported. A sitecustomize on the runs' PYTHONPATH, inert unless GENDISTILL_IMPORT_TRACE names a directory; a
# process's record is written when it exits (a sampler's when it idles out or is stopped).
TRACER = """
import atexit, json, os, sys
def _dump():
    out = os.environ.get("GENDISTILL_IMPORT_TRACE")
    if out:
        path = os.path.join(out, f"{os.getpid()}.json")
        with open(path + ".tmp", "w") as f:  # whole or absent: a test may read while a sampler exits
            json.dump({"argv": sys.argv, "modules": sorted({m.split(".")[0] for m in list(sys.modules)})}, f)
        os.replace(path + ".tmp", path)
atexit.register(_dump)
"""
TRACE_DIR = ".import-trace"  # in a traced run's working directory


def traced(wd: Path) -> dict:
    """The environment for run_snakemake that traces every Python process of the run into wd/.import-trace."""
    site, trace = RUNTIME_DIR / "tracer", wd / TRACE_DIR
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(TRACER)
    trace.mkdir(parents=True, exist_ok=True)
    return {"PYTHONPATH": str(site), "GENDISTILL_IMPORT_TRACE": str(trace)}


# The session's tiny runs share one results/models/ directory (a symlink in each run to SHARED_MODELS). The sampler
# is keyed by the model's resolved path, so every run of the tiny model in this session (tiny_run, its copies and
# the fresh directories given with_tiny_model) is served by one warm sampler instead of starting its own: a
# sampler's start is ~8.5 s of CPU, mostly importing diffusers. No test writes into a model directory.
SHARED_MODELS = "shared_models"


def link_models(wd: Path, models: Path) -> Path:
    (wd / "results").mkdir(parents=True, exist_ok=True)
    (wd / "results" / "models").symlink_to(models, target_is_directory=True)
    return wd


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One full tiny workflow run shared by read-only tests (caching tests copy it), across xdist workers."""

    def build(wd: Path) -> None:
        shared = wd.parent / SHARED_MODELS
        shared.mkdir(exist_ok=True)
        run_snakemake(link_models(wd, shared), TINY_CONFIG, env=traced(wd))

    return built_once(tmp_path_factory, "tiny_run", build)


def with_tiny_model(wd: Path, tiny_run: Path) -> Path:
    """Give a fresh working directory the session's tiny model (tiny_run's results/models/, made by its
    build_tiny_model job), so a run there neither builds it again (~10 s a run) nor starts a sampler of its own.
    The model's directory name is keyed by the tiny spec: a config with another spec builds its own (in the
    shared directory too)."""
    return link_models(wd, (tiny_run / "results" / "models").resolve())


# Both ablations on top of the tiny run: the PDA ablation's variants (a pool of 3 per class; the first is the run's
# own set) and the teacher ablation (one teacher, a selection per criterion over a pool of 2 x 2 per class, soft
# labels). tests/test_fitted.py reads the PDA ablation's outputs, tests/test_teacher.py the teacher ablation's,
# tests/test_envs.py the imports of both.
PDA_VARIANTS = [{"n_generated": 2, "n_aug": 2}, {"n_generated": 2, "n_aug": 1}, {"n_generated": 3, "n_aug": 0}]
ABLATION_CONFIG = deep_update(
    TINY_CONFIG,
    {
        "ablation": {
            "pda": True,
            "variants": PDA_VARIANTS,
            "teacher": True,
            "oversample": 2,
            "criteria": ["difficulty"],
        },
        "teacher": {"epochs": 1},
    },
)


@pytest.fixture(scope="session")
def ablation_run(tmp_path_factory, tiny_run):
    """A copy of the tiny run with both ablations run on it (ABLATION_CONFIG), shared by read-only tests."""

    def build(wd: Path) -> None:
        shutil.copytree(tiny_run, wd, symlinks=True, dirs_exist_ok=True)  # copy2 keeps mtimes: nothing reruns
        run_snakemake(wd, ABLATION_CONFIG, env=traced(wd))

    return built_once(tmp_path_factory, "ablation_run", build)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny random-weight SDXL-architecture pipeline directory, built once per test session."""
    from gendistill.generator.build import save_tiny_pipeline

    models = built_once(tmp_path_factory, "tiny_models", lambda d: save_tiny_pipeline(d / "tiny", {"seed": 0}))
    return str(models / "tiny")


@pytest.fixture
def private_runtime(tmp_path_factory, monkeypatch):
    """A runtime directory of this test's own: its samplers are found, and stopped afterwards, only here."""
    from gendistill.sampling.client import stop_samplers

    d = tmp_path_factory.mktemp("xdg")
    d.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    yield d / "gendistill"
    stop_samplers(timeout=5, directory=d / "gendistill")


# The fitted stand-in generator (model.fitted), fitted once per session: a shorter fit than the demo's
# (model.fitted defaults: 200 VAE + 300 UNet steps; this one about a minute on 2 cores) to keep the suite quick. Its
# generated digits are all recognised; used by tests/test_fitted.py and the report test.
FIT_SPEC = {"seed": 0, "vae_steps": 80, "unet_steps": 120}
FITTED_CONFIG = {
    "run": "f",
    "seed": 0,
    "dataset": {"name": "digits", "classes": [0, 1, 2, 3, 4]},
    "model": {"fitted": FIT_SPEC},
    "generation": {"n_generated": 4, "resolution": 32, "server_idle_seconds": 20},
    "augmentation": {"n_aug": 1},
    "recognition": {"epochs": 5},
    # the negative controls train in-process; the workflow's evaluation is covered by the tiny runs
    "evaluation": {"activate": False, "epochs": 30, "batch_size": 64},
}


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory):
    """Fit the stand-in once per session (through the workflow's fit_model rule) and run everything up to class
    recognition with it."""
    import time

    def build(wd: Path) -> None:
        t0 = time.perf_counter()
        run_snakemake(wd, FITTED_CONFIG, env=traced(wd))
        print(f"\nfitted_run: fit + sample + augment + package + recognition in {time.perf_counter() - t0:.0f}s")

    return built_once(tmp_path_factory, "fitted_run", build)
