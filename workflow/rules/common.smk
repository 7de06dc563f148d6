# Resolve and check the config before any job: schema, semantic checks, dataset and model presence.
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from gendistill.config import read_time_budget_record
from gendistill.plan import ConfigError, DatasetError, build_plan

try:
    PLAN = build_plan(config)
except (ConfigError, DatasetError) as err:
    raise WorkflowError(f"\n{err}\n") from None

CFG = PLAN.cfg  # config with schema defaults filled in
OUT = str(PLAN.out)
CLASS_IDS = [c.id for c in PLAN.classes]
SRC = str(Path(workflow.basedir) / "src")


def _uses_conda():
    from snakemake.settings.types import DeploymentMethod

    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


# Interpreter for shell jobs: the env's python under --sdm conda, else the one running Snakemake.
PY = "python" if _uses_conda() else sys.executable
PYRUN = f"PYTHONPATH={SRC}${{PYTHONPATH:+:$PYTHONPATH}} {PY} -m gendistill"


def group_sample_jobs():
    """How many sample jobs this Snakemake runs as one group job (0 if it is not running a group).

    On SLURM this Snakemake is the group's batch step, and snakemake-executor-plugin-slurm runs each of the
    group's jobs as its own `srun` step. Known once the DAG is being built (not while the Snakefile is read).
    """
    if not workflow.group_settings or not workflow.dag_settings or workflow.group_settings.local_groupid == "local":
        return 0
    return sum(1 for t in workflow.dag_settings.target_jobs if t.rulename == "sample")


_PRESTART_CHECKED = []


def sample_input(wildcards):
    """The sample rule's input: the tiny model directory, if any (a real model is a param).

    Also, once per process: in the batch step of a SLURM job that runs a group of sample jobs, start the
    group's sampler there, so that it serves every class of the group (one model load) and ends with the job;
    a sampler started by one class's `srun` step would end with that step (sample_client.prestart_for_group).
    Under --sdm conda the jobs' interpreter is the env's, not this one: they start their own (a load per class).
    """
    if not _PRESTART_CHECKED:
        _PRESTART_CHECKED.append(True)
        n = group_sample_jobs()
        if n > 1 and CFG["generation"]["server"] and not _uses_conda() and not workflow.dryrun:
            from gendistill.sample_client import prestart_for_group

            prestart_for_group(json.loads(LOAD), json.loads(RUNTIME), n)
    return model_input()


def as_json(obj):
    """Stable JSON for params: Snakemake reruns a job exactly when its params string changes."""
    return json.dumps(obj, sort_keys=True)


wildcard_constraints:
    cls="|".join(CLASS_IDS) or "NONE",
    set="distilled|random_subset|full",
    model="convnet|resnet18",
    seed=r"\d+",


def model_input():
    """The tiny model directory is an input of sampling (rebuilt -> resampled); a real model is a param."""
    return PLAN.model_dir or []


def eval_sets():
    sets = ["distilled"]
    if PLAN.has_real_data:
        base = CFG["evaluation"]["baselines"]
        sets += [s for s in ("random_subset", "full") if base[s]]
    return sets


def evaluation_active():
    return CFG["evaluation"]["activate"] and PLAN.has_real_data


def pipeline_outputs():
    out = [
        f"{OUT}/prompts.csv",
        f"{OUT}/dataset/distilled.pt",
        f"{OUT}/dataset/manifest.csv",
        f"{OUT}/dataset/provenance.json",
    ]
    if evaluation_active():
        out += [f"{OUT}/results/results.csv"]
    return out


def final_outputs():
    """The pipeline's outputs plus the report's items (report_outputs() below)."""
    return list(dict.fromkeys(pipeline_outputs() + report_outputs()))


REPORT = f"{OUT}/report"


def report_items():
    """Everything the run-time summary waits for, besides the pipeline's own outputs."""
    items = [f"{REPORT}/samples", f"{REPORT}/samples_overview.png", f"{REPORT}/prompts.html"]
    if evaluation_active():
        items += [
            f"{OUT}/results/results.csv",
            f"{OUT}/results/summary.csv",
            f"{OUT}/results/per_class.csv",
            f"{OUT}/results/accuracy.png",
            f"{OUT}/results/results.html",
            f"{OUT}/results/per_class.png",
            f"{OUT}/results/per_class.html",
        ]
    return items


def report_outputs():
    return report_items() + [f"{REPORT}/runtimes.csv", f"{REPORT}/runtimes.png", f"{REPORT}/runtimes.html"]
