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
    # the session's one warm sampler of the tiny model outlives the gaps between the tests that use it (a start is
    # ~8 s of CPU); stop_samplers_at_end stops it
    "generation": {"n_generated": 2, "resolution": 32, "server_idle_seconds": 600},
    "augmentation": {"n_aug": 2},
    "evaluation": {
        "models": ["convnet"],
        "seeds": [0],
        "epochs": 2,
        "batch_size": 32,
        "baselines": {"random_subset": False, "full": False},
        "max_test_images": 200,
        "fidelity": {"activate": False},  # it needs the recogniser (or the teacher); tests/test_baselines.py has it
    },
    "recognition": {"activate": False},
}


# Tiers (pyproject.toml markers; `make test-fast` runs what is none of them): a test that uses a whole workflow run
# is `workflow`; one that starts sampler processes or builds and runs a diffusion pipeline is `slow`, whatever
# file it is in; one that costs a minute or more of CPU on its own (the fitted stand-in's fit, the memory
# measurement, interrupted and concurrent runs, every family end to end) is also `long`: `make test-long`, which CI
# runs beside `make test`. Tests that do so without these fixtures carry the marker themselves.
TINY_RUNS = {
    "tiny_run",
    "ablation_run",
    "teacher_ablation_run",
    "real_data_run",
}  # the tiny run and the copies built on it
WORKFLOW_FIXTURES = TINY_RUNS | {"fitted_run"}
SLOW_FIXTURES = {"private_runtime", "tiny_model_dir", "pipe"}
LONG_FIXTURES = {
    "fitted_run",
    "teacher_ablation_run",
    "real_data_run",
}  # the fit alone is ~100 s of CPU, the teacher ablation ~55 s


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    """The markers before `-m` deselects by them (pytest's own hook, inside this wrapper), the start order after."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & WORKFLOW_FIXTURES:
            item.add_marker(pytest.mark.workflow)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if used & LONG_FIXTURES:
            item.add_marker(pytest.mark.long)
    yield
    items[:] = start_order(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# The tests of `make test` that take longest (wall time on 2 cores, 2 workers): started first in their group, so no
# worker is left with a long test at the end while the others are idle. Only the order depends on this list.
LONGEST = [
    "test_a_protocol_with_regimes_and_ars_in_the_workflow",  # ~115 s (with the tiny run, which it waits for)
    "test_rerun_is_byte_identical_across_runs_batch_sizes_and_sampler_modes",  # ~50 s
    "test_pda_ablation_variants_share_images_and_copies_and_reuse_the_runs_evaluation",  # ~45 s (the ablation run)
    "test_a_non_sdxl_family_caches_per_class_and_the_decoder_decides_pixels",  # ~45 s
    "test_selection_and_soft_labels_in_the_workflow",  # ~40 s
    "test_the_baselines_and_the_fidelity_table_in_the_workflow",  # ~40 s (72 s beside other work)
    "test_methods_in_the_workflow_share_the_runs_jobs_and_rerun_alone",  # ~26 s
    "test_editing_one_class_reruns_only_that_class",  # ~25 s
]


def start_order(items: list, workers: int) -> list:
    """The order that keeps every pytest-xdist worker busy from the start. worksteal gives worker k the k-th of
    `workers` contiguous shares of the list (then moves tests from the longest queue to an idle worker). The
    suite's shared builds are the fitted run (its fit, over a minute, is the longest), the tiny run (which
    every test of the tiny and ablation runs waits for) and the tests that build nothing shared; each opens a
    share of its own (those that share no build are dealt over the workers left), so no worker waits at the start
    for a run another is building, and the quick unit tests come last in each share, where they fill the gaps.
    Within a group the LONGEST tests come first, then the collection order."""

    def uses(item, names):
        return bool(set(getattr(item, "fixturenames", ())) & names)

    def heavy(item):
        return item.get_closest_marker("workflow") or item.get_closest_marker("slow")

    def first(item):  # the longest tests first in their group, then the collection order (sort is stable)
        return next((k for k, name in enumerate(LONGEST) if item.nodeid.endswith(name)), len(LONGEST))

    items = sorted(items, key=first)
    shared = [i for i in items if uses(i, TINY_RUNS)]
    shared.sort(key=lambda i: uses(i, {"fitted_run"}))  # the test that reads every shared run last
    fitted = [i for i in items if uses(i, {"fitted_run"}) and i not in shared]
    rest = [i for i in items if i not in shared and i not in fitted]
    alone = [i for i in rest if heavy(i)]
    light = [i for i in rest if not heavy(i)]
    workers = max(1, workers)
    spare = max(1, workers - bool(fitted) - bool(shared))  # workers left for the tests that share no build
    groups = [g for g in (fitted, shared) if g] + [alone[k::spare] for k in range(spare) if alone[k::spare]]
    shares = [[] for _ in range(workers)]
    for k, g in enumerate(groups):  # more groups than workers: the extra ones follow in turn
        shares[k % workers].extend(g)
    order, left = [], len(items)
    for k, share in enumerate(shares):  # worksteal's split: the k-th worker gets left // (workers - k)
        size = left // (workers - k)
        pad = max(0, size - len(share))
        order += share + light[:pad]
        light = light[pad:]
        left -= len(share) + pad
    return order + light


def deep_update(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def eval_record(set_name: str, seed: int, accuracy: float, labels: str = "hard") -> dict:
    """An evaluation job's metrics file as the results table reads it (3 classes, 6 training images, 2 epochs)."""
    return {
        "set": set_name,
        "model_label": "ConvNet-D3",
        "seed": seed,
        "accuracy": accuracy,
        "n_train": 6,
        "n_test": 100,
        "recipe": {"epochs": 2, "train_augment": True},
        "train_seconds": 1.0,
        "chance": 1 / 3,
        "labels": labels,
    }


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
# runs (tiny_run, ablation_run, teacher_ablation_run, fitted_run) record, for every Python process they start, the
# top-level modules it imported. A sitecustomize on the runs' PYTHONPATH, inert unless GENDISTILL_IMPORT_TRACE names a
# directory; a process's record is written when it exits (a sampler's when it idles out or is stopped).
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


# The PDA ablation on top of the tiny run (its variants: a pool of 3 per class; the first is the run's own set), read by
# tests/test_fitted.py; and the teacher ablation on top of that (one teacher, a selection per criterion over a pool
# of 2 x 2 per class, soft labels), whose jobs' imports tests/test_envs.py checks (test-long: ~55 s of CPU more).
PDA_VARIANTS = [{"n_generated": 2, "n_aug": 2}, {"n_generated": 2, "n_aug": 1}, {"n_generated": 3, "n_aug": 0}]
ABLATION_CONFIG = deep_update(TINY_CONFIG, {"ablation": {"pda": True, "variants": PDA_VARIANTS}})
TEACHER_ABLATION_CONFIG = deep_update(
    ABLATION_CONFIG,
    {"ablation": {"teacher": True, "oversample": 2, "criteria": ["difficulty"]}, "teacher": {"epochs": 1}},
)


@pytest.fixture(scope="session")
def ablation_run(tmp_path_factory, tiny_run):
    """A copy of the tiny run with the PDA ablation run on it (ABLATION_CONFIG), shared by read-only tests."""

    def build(wd: Path) -> None:
        shutil.copytree(tiny_run, wd, symlinks=True, dirs_exist_ok=True)  # copy2 keeps mtimes: nothing reruns
        run_snakemake(wd, ABLATION_CONFIG, env=traced(wd))

    return built_once(tmp_path_factory, "ablation_run", build)


@pytest.fixture(scope="session")
def teacher_ablation_run(tmp_path_factory, ablation_run):
    """A copy of the ablation run with the teacher ablation run on it too (TEACHER_ABLATION_CONFIG)."""

    def build(wd: Path) -> None:
        shutil.copytree(ablation_run, wd, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(wd / TRACE_DIR, ignore_errors=True)  # its own processes only (the copied are ablation_run's)
        run_snakemake(wd, TEACHER_ABLATION_CONFIG, env=traced(wd))

    return built_once(tmp_path_factory, "teacher_ablation_run", build)


# The run that uses the real data and the teacher beyond the tiny run, on a copy of it: the selection baselines,
# the fidelity measure on the teacher's features, labels soft and kd with the kd cache, and a generation method
# (D4M's prototypes) with its own package and soft labels; whose jobs' imports tests/test_envs.py checks.
REAL_DATA_CONFIG = deep_update(
    TINY_CONFIG,
    {
        "teacher": {"epochs": 1},
        "ablation": {"methods": [{"name": "proto", "generation": {"init": "prototypes", "strength": 0.5, "steps": 2}}]},
        "evaluation": {
            "labels": ["soft", "kd"],
            "kd": {"cache": True},
            "baselines": {"random_subset": True, "kmeans_real": True, "rded": True},
            "fidelity": {"activate": True, "features": "teacher"},
        },
    },
)


@pytest.fixture(scope="session")
def real_data_run(tmp_path_factory, tiny_run):
    """A copy of the tiny run with REAL_DATA_CONFIG run on it (traced)."""

    def build(wd: Path) -> None:
        shutil.copytree(tiny_run, wd, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(wd / TRACE_DIR, ignore_errors=True)  # its own processes only
        run_snakemake(wd, REAL_DATA_CONFIG, env=traced(wd))

    return built_once(tmp_path_factory, "real_data_run", build)


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
