# Generative dataset distillation: class names -> prompts -> per-class sampling -> post data augmentation
# -> packaged dataset -> evaluation (train on it, test on the real test set) -> results table and report;
# plus class recognition of the generated images and, optionally, the PDA ablation.
# Thin on purpose: the plan (classes, prompts, seeds, every count, the ablations' variants) is resolved by
# src/gendistill/plan.py, read in workflow/rules/common.smk; logic lives in src/gendistill/.
from snakemake.utils import min_version

min_version("9.0")

# A --configfile on the command line is the whole config (schema defaults fill the rest); only without one
# does config.yaml apply, so keys of the paper's job never leak into the demo or a user's config.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/package.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/recognition.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/fidelity.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_inputs,
