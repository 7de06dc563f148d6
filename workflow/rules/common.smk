# Resolve and check the config before any job: schema, semantic checks, dataset and model presence.
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from gendistill.config import ConfigError, read_time_budget_record
from gendistill.datasets import DatasetError
from gendistill.evaluation.models import MODELS as EVAL_MODELS
from gendistill.evaluation import runs as EVAL_RUNS
from gendistill.layout import ABLATION, TEACHER_ABLATION  # the {scope}s of rules serving the run and ablations
from gendistill.plan import build_plan
from gendistill.sampling.request import write_request
from gendistill.report import missing_packages as missing_report_packages


def refuse(message):
    """Stop before any job with `message` alone: printed once, without the file, line and traceback of this code
    around it (a WorkflowError adds them), which is not where the problem is."""
    print(f"\n{message}\n", file=sys.stderr)
    sys.exit(1)


# The model is checked where a sample job is planned (check_model_and_sampling_here, below), not here: targets that
# need no model, such as the prompt table to review before any GPU work, run while the model is not in place yet.
try:
    PLAN = build_plan(config, check_model=False)
except (ConfigError, DatasetError) as err:
    refuse(err)

CFG = PLAN.cfg  # config with schema defaults filled in
OUT = str(PLAN.out)
# The run's file paths (gendistill.layout): every rule's outputs. A rule that reads a file takes it from
# rules.<name>.output, or from LAYOUT where the rule that writes it is defined later (teacher.smk)
LAYOUT = PLAN.layout
CLASS_IDS = [c.id for c in PLAN.classes]
SRC = str(Path(workflow.basedir) / "src")


def uses_conda():
    from snakemake.settings.types import DeploymentMethod

    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


# What shell jobs run with, passed in the environment (every job inherits it; a SLURM job's Snakemake reads this
# file again): the interpreter (the env's python under --sdm conda, else the one running Snakemake), src/ first
# on the path, and the sampler's and the evaluation's runtime knobs. Not params: those are rerun triggers, and
# these must not rerun anything (another venv, another batch size, processes per evaluation). Not workflow variables in `shell:` either (`snakemake --lint`).
# Jobs run `"$GENDISTILL_PYTHON" -m gendistill <subcommand>` (quoted: a venv path may contain spaces).
_pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != SRC]
os.environ.update(
    GENDISTILL_PYTHON="python" if uses_conda() else sys.executable,
    PYTHONPATH=os.pathsep.join([SRC, *_pythonpath]),
    GENDISTILL_SAMPLER_RUNTIME=json.dumps(PLAN.sampler_runtime, sort_keys=True),
    # the evaluation's: processes per job, channels-last, compile (gendistill.evaluation.runs.RUNTIME_KEYS)
    GENDISTILL_EVAL_RUNTIME=json.dumps(EVAL_RUNS.runtime_settings(CFG), sort_keys=True),
)
# The GPU slots the evaluation's training jobs take (gendistill.evaluation.gpus), where Snakemake runs them on this
# machine: the run's own Snakemake says so. A cluster job's Snakemake (remote mode) takes none (its allocation's GPUs
# are the job's own), and a job's subprocess keeps the word of the Snakemake that started it.
if workflow.is_main_process or workflow.remote_exec or os.environ.get("GENDISTILL_EVAL_SLOTS") is None:
    _slots = EVAL_RUNS.slot_settings(CFG, workflow.local_exec and not workflow.remote_exec)
    os.environ.update(GENDISTILL_EVAL_SLOTS=json.dumps(_slots, sort_keys=True))


def as_json(obj):
    """Stable JSON for params: Snakemake reruns a job exactly when its params string changes."""
    return json.dumps(obj, sort_keys=True)


def fixed(value):
    """A param holding `value` as is. Snakemake fills {wildcards} into plain string params, and a prompt, a
    class name or a path may contain braces (a prompt override "a {name}"); a function's value is left alone."""
    return lambda wildcards: value


wildcard_constraints:
    cls="|".join(CLASS_IDS) or "NONE",
    set=EVAL_RUNS.KEY_PATTERN,  # evaluation runs: distilled, random_subset.kd, distilled.noaug, full, ...
    model="|".join(EVAL_MODELS),  # the evaluation-model registry
    seed=r"\d+",


def scopes(*fixed):
    """The {scope} wildcard constraint of a rule that serves the run ("") and the scopes `fixed` (gendistill.layout's
    ABLATION, TEACHER_ABLATION) and every generation method's (ablation.methods: ablation/methods/<name>/)."""
    return "({})?".format("|".join(re.escape(s) for s in [*fixed, *PLAN.ablations.method_scopes]) or "NONE")


# The {method} wildcard constraint of the generation methods' own rules (ablation.methods' names).
METHOD_NAMES = "|".join(re.escape(m["name"]) for m in PLAN.ablations.methods) or "NONE"


def sample_inputs(wildcards):
    """The sample rule's inputs: the built model (if any) and, when the scope's generation reads real data, the
    class's prototypes file."""
    out = {"model": sample_model_input(wildcards)}
    if PLAN.reads_prototypes(wildcards.scope):
        out["prototypes"] = LAYOUT.prototypes(wildcards.cls)
    return out


def sample_model_input(wildcards):
    """The sample rule's input: the tiny model directory, if any (a real model is a param).

    Also the hook that starts a SLURM job's sampler in the job's batch step (client.start_for_slurm_batch_step):
    an input function is the only workflow code that runs there before the job's `srun` steps (Snakemake runs
    spawned jobs with --no-hooks, so `onstart:` does not). Elsewhere it does nothing; once per process.
    """
    if not _SLURM_SAMPLER_CHECKED:
        check_model_and_sampling_here()
        check_slots_used()
    if not _SLURM_SAMPLER_CHECKED and CFG["generation"]["server"] and not uses_conda() and not workflow.dryrun:
        from gendistill.sampling.client import start_for_slurm_batch_step

        start_for_slurm_batch_step(PLAN.load_spec, PLAN.sampler_runtime)
    _SLURM_SAMPLER_CHECKED.append(True)
    return model_input()


_SLURM_SAMPLER_CHECKED = []


def check_model_and_sampling_here():
    """Refuse, before any job (`-n` too), a run whose model cannot sample it (Plan.model_problems: missing,
    incomplete, settings its family cannot do), or that this machine cannot sample: the pipeline's estimated
    memory above what the host has, float16 on a CPU (plan.sampling_problems_here). Here, not where the plan is
    built: only a DAG with a sample job needs the model, and only now does Snakemake know whether its jobs run on
    this machine (a local executor) or on others (SLURM, whose nodes the sampler checks when it loads)."""
    if not workflow.is_main_process:
        return
    problems = PLAN.model_problems()
    if problems:
        refuse(ConfigError(problems))
    if not workflow.local_exec:
        return
    from gendistill.plan import sampling_problems_here

    problems = sampling_problems_here(PLAN, CFG["generation"]["server"] and our_sampler_running)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        refuse(f"this machine cannot sample this run (nothing was started):\n{lines}")


def check_slots_used():
    """Say, before any job, when Snakemake would leave GPU slots idle: `generation.gpus: [0, 1]` with `--resources
    gpu=1` runs one sample job at a time, on slot 0 (slots.idle_slots_note). Where its jobs run here."""
    if not (workflow.local_exec and workflow.is_main_process):
        return
    from gendistill.sampling.slots import SlotError, idle_slots_note, resolve_slots

    try:
        slots = resolve_slots(CFG["generation"]["gpus"])
    except SlotError:
        return  # each sample job fails with it, in its log
    gpu = workflow.global_resources.get("gpu")
    if note := idle_slots_note(slots, getattr(gpu, "value", gpu), workflow.cores):
        print(f"gendistill: {note}", file=sys.stderr, flush=True)


def our_sampler_running():
    """This run's sampler is up (its model already in memory)."""
    from gendistill.sampling.client import sampler_paths
    from gendistill.sampling.runtime import RuntimeDirError, connect

    try:
        conn = connect(str(sampler_paths(PLAN.load_spec, PLAN.sampler_runtime)["socket"]))
    except (OSError, RuntimeDirError):
        return False
    if conn is None:
        return False
    conn[0].close()
    return True


def model_input():
    """The tiny model directory is an input of sampling (rebuilt -> resampled); a real model is a param."""
    return PLAN.model_dir or []


def sample_request(scope, cls):
    """The sample job's request file (gendistill.sampling.request): the class with the images to sample (its
    `n_generated`: plan.sample_class), the load spec, the generation settings and the output size, written now,
    private and named by its content. The job reads it, so no prompt or model path is on its command line
    (readable by every user of the machine); the same values are the job's params, the rerun triggers."""
    request = {
        "cls": PLAN.sample_class(scope, cls),
        "load": PLAN.load_spec,
        "gen": PLAN.scoped_gen_spec(scope),
        "out_size": PLAN.image_size,
    }
    return write_request(LAYOUT.requests, cls, request)


# The functions below read rules.<name>.output: they run once every rule is defined (rule all, job inputs).


def pipeline_outputs():
    out = [
        rules.prompts.output.table,
        rules.package.output.tensor,
        rules.package.output.manifest,
        rules.package.output.provenance,
    ]
    if PLAN.evaluation_active:
        out += [rules.results_table.output.table]
    if PLAN.selection_active:
        out += [LAYOUT.selection_scores(c) for c in CLASS_IDS]
    if PLAN.soft_labels_active:
        out += [rules.soft_labels.output.soft_labels]
    return out


def all_inputs(wildcards):
    """The default target's inputs: the pipeline's outputs, the report and the measurements. The report's plots
    need the `report` extra (matplotlib); checked here, when the DAG is built (dry runs too), because only then is
    it known that this target is asked for: `snakemake ... package` on a compute node installed without the extra
    needs none of it. Under --sdm conda each rule's env brings its own."""
    if not uses_conda() and (missing := missing_report_packages()):
        refuse(
            f"the report needs {', '.join(missing)}, which is not installed (the project's `report` extra). Fix: "
            "pip install 'gendistill[report]' (offline: a wheelhouse made with EXTRAS=report), or ask for results "
            "without the report: `snakemake package ...` (the dataset) or `snakemake results_table ...` (its "
            "evaluation)."
        )
    return list(dict.fromkeys(final_outputs() + measure_outputs()))


def final_outputs():
    """The pipeline's outputs plus the report's items (report_outputs() below)."""
    return list(dict.fromkeys(pipeline_outputs() + report_outputs()))


REPORT = LAYOUT.report


def report_items():
    """Everything the run-time summary waits for, besides the pipeline's own outputs."""
    items = [*rules.sample_grids.output, *rules.prompts_table.output]
    if PLAN.evaluation_active:
        items += [*rules.results_table.output, *rules.evaluation_plots.output]
    return items


def report_outputs():
    return report_items() + list(rules.runtimes.output)


def measure_outputs():
    """Final outputs (and report items) of the recognition, the fidelity measure and the ablations, when active."""
    out = []
    if PLAN.recognition_active:
        out += [*rules.recognise.output, *rules.recognition_plots.output]
    if PLAN.fidelity_active:
        out += [*rules.fidelity.output, *rules.fidelity_table.output]
    if PLAN.ablations.pda_active:
        out += list(rules.ablation_table.output)
    if PLAN.ablations.teacher_active:
        out += list(rules.teacher_ablation_table.output)
    return out


# Where the jobs run (this machine, or a cluster's nodes) is known only once Snakemake builds the DAG: it reads the
# Snakefile before it sets its executor (workflow.local_exec is True then, on SLURM too). So the GPUs a job asks
# for are resource functions, and the machine is checked from an input function, both run while the DAG is built.
def eval_gpus(cap=None):
    """GPUs one evaluation job asks for (0 where it trains on the CPU), at most `cap`."""
    n = EVAL_RUNS.job_gpus(CFG, workflow.local_exec)
    return min(n, cap) if cap else n


def eval_resources(cap=None):
    """The evaluation rules' GPU resources: `gpu` counted against --resources gpu=N here, `gres` on a cluster."""
    return {
        "gpu": lambda w: eval_gpus(cap) if workflow.local_exec else 0,
        "gres": lambda w: f"gpu:{n}" if (n := eval_gpus(cap)) and not workflow.local_exec else "",
    }


def evaluation_data(w):
    """The evaluate rule's set file (none for a real subset or the full data); first checks, once, that the
    machines the jobs run on can train them (processes above the GPUs a job can have, fp16 without a GPU)."""
    if not _EVAL_MACHINE_CHECKED:
        _EVAL_MACHINE_CHECKED.append(True)
        if workflow.is_main_process and PLAN.evaluation_active:
            limit = workflow.global_resources.get("gpu")  # --resources gpu=N, a Resource (or absent)
            problems = EVAL_RUNS.machine_problems(CFG, workflow.local_exec, getattr(limit, "value", limit))
            if problems:
                refuse(ConfigError(problems))
    return PLAN.evaluation(w.scope, w.set).data or []


_EVAL_MACHINE_CHECKED = []
