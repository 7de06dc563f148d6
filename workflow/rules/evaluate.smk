# Evaluation: each (evaluation run, model, training seed) is its own job, so adding a seed or a model reruns
# only that job. A run (gendistill.evaluation.runs, the {set} wildcard) is a set (the distilled set, a seeded
# random real subset of the same IPC, the full real set) in one label regime, with or without training
# augmentation; its recipe is the config's evaluation keys with evaluation.protocol's preset under them.
# The same rule evaluates the ablations' variants ({scope} ablation/, {set} the variant's name: ablation/eval/):
# what a job trains on and how is the plan's (Plan.evaluation: a gendistill.evaluation.runs.EvalJob).

DATASET = as_json(CFG["dataset"])


KD = as_json(EVAL_RUNS.kd_settings(CFG))


rule evaluate:
    input:
        data=lambda w: PLAN.evaluation(w.scope, w.set).data or [],
        # soft labels: the package's sidecar for the distilled set, the teacher itself for the real subset
        soft_labels=lambda w: LAYOUT.soft_labels if PLAN.evaluation(w.scope, w.set).reads_soft_labels else [],
        # the teacher: run online (kd), or labelling a real set's images once (soft)
        teacher=lambda w: LAYOUT.teacher if PLAN.evaluation(w.scope, w.set).reads_teacher else [],
    output:
        metrics=LAYOUT.scoped_metrics(),
    log:
        f"{OUT}/logs/{{scope}}evaluate/{{set}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/{{scope}}evaluate/{{set}}/{{model}}/seed{{seed}}.tsv"
    wildcard_constraints:
        scope=f"({ABLATION})?",
        # the run's evaluation keys, or (scope ablation/) the ablations' variant names
        set="|".join([EVAL_RUNS.KEY_PATTERN, *PLAN.ablations.evaluated]),
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        set_name=lambda w: PLAN.evaluation(w.scope, w.set).set,
        label_regime=lambda w: PLAN.evaluation(w.scope, w.set).labels,
        kd=lambda w: KD if PLAN.evaluation(w.scope, w.set).labels != "hard" else "",
        recipe=lambda w: as_json(PLAN.evaluation(w.scope, w.set).recipe),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        # label -> images of a random real subset (its set's images per class), else none
        per_class_counts=lambda w: (
            as_json(PLAN.evaluation(w.scope, w.set).counts) if PLAN.evaluation(w.scope, w.set).counts else ""
        ),
        num_classes=len(PLAN.all_class_names),
        max_test_images=CFG["evaluation"]["max_test_images"],
        resolution=CFG["evaluation"]["resolution"],
        device=CFG["evaluation"]["device"],
    message:
        "Training {wildcards.model} (seed {wildcards.seed}) on {wildcards.scope}{wildcards.set}"
    script:
        "../scripts/evaluate.py"


rule results_table:
    input:
        metrics=lambda w: PLAN.run_metrics(),
    output:
        table=report(
            LAYOUT.results("results.csv"),
            caption="../report/results_table.rst",
            category="Evaluation",
            subcategory="Data (CSV)",
        ),
        summary=report(
            LAYOUT.summary,
            caption="../report/summary.rst",
            category="Evaluation",
            subcategory="Data (CSV)",
        ),
        per_class=report(
            LAYOUT.results("per_class.csv"),
            caption="../report/per_class_csv.rst",
            category="Evaluation",
            subcategory="Data (CSV)",
        ),
        provenance=LAYOUT.evaluation_provenance,
    log:
        f"{OUT}/logs/results_table.log",
    benchmark:
        f"{OUT}/benchmarks/results_table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        class_names=fixed(as_json(dict(enumerate(PLAN.all_class_names)))),
        # the protocol (its sources, notes, the keys the config overrode) and every run's resolved recipe
        protocol=fixed(as_json(PLAN.evaluation_record)),
        scores=fixed(as_json(CFG["evaluation"]["scores"])),
        # acc(real, hard) for HLR when given instead of the full-data run
        full_accuracy=CFG["evaluation"]["baselines"]["full_accuracy"],
    script:
        "../scripts/results_table.py"


rule evaluation_plots:
    input:
        summary=rules.results_table.output.summary,
        per_class=rules.results_table.output.per_class,
    output:
        accuracy=report(
            LAYOUT.results("accuracy.png"),
            caption="../report/accuracy.rst",
            category="Evaluation",
            subcategory="Accuracy",
        ),
        table=report(
            LAYOUT.results("results.html"),
            caption="../report/results_html.rst",
            category="Evaluation",
            subcategory="Accuracy",
        ),
        per_class=report(
            LAYOUT.results("per_class.png"),
            caption="../report/per_class.rst",
            category="Evaluation",
            subcategory="Per class",
        ),
        per_class_table=report(
            LAYOUT.results("per_class.html"),
            caption="../report/per_class_csv.rst",
            category="Evaluation",
            subcategory="Per class",
        ),
    log:
        f"{OUT}/logs/evaluation_plots.log",
    benchmark:
        f"{OUT}/benchmarks/report/evaluation_plots.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        run=fixed(CFG["run"]),
    script:
        "../scripts/evaluation_plots.py"
