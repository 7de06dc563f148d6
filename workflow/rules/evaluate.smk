# Evaluation: each (evaluation run, model, training seed) is its own job, so adding a seed or a model reruns
# only that job. A run (gendistill.evaluation.runs, the {set} wildcard) is a set (the distilled set, a seeded
# random real subset of the same IPC, the full real set) in one label regime, with or without training
# augmentation; its recipe is the config's evaluation keys with evaluation.protocol's preset under them.

RECIPE = eval_recipe(EVAL_RUNS.parse_key("distilled", CFG))  # the run's own recipe (the ablations train with it)
DATASET = as_json(CFG["dataset"])


KD = as_json(EVAL_RUNS.kd_settings(CFG))


rule evaluate:
    input:
        data=lambda w: rules.package.output.tensor if eval_run(w).set == "distilled" else [],
        # soft labels: the package's sidecar for the distilled set, the teacher itself for the real subset
        soft_labels=lambda w: (
            LAYOUT.soft_labels if eval_run(w).set == "distilled" and eval_run(w).labels == "soft" else []
        ),
        # the teacher: run online (kd), or labelling a real set's images once (soft)
        teacher=lambda w: (
            LAYOUT.teacher
            if eval_run(w).labels == "kd" or (eval_run(w).labels == "soft" and eval_run(w).set != "distilled")
            else []
        ),
    output:
        metrics=LAYOUT.metrics(),
    log:
        f"{OUT}/logs/evaluate/{{set}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{set}}/{{model}}/seed{{seed}}.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        set_name=lambda w: eval_run(w).set,
        label_regime=lambda w: eval_run(w).labels,
        kd=lambda w: KD if eval_run(w).labels != "hard" else "",
        recipe=lambda w: as_json(eval_recipe(eval_run(w))),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        per_class_counts=lambda w: (
            as_json({c.index: c.n_generated * (1 + CFG["augmentation"]["n_aug"]) for c in PLAN.classes})
            if eval_run(w).set == "random_subset"
            else ""
        ),
        num_classes=len(PLAN.all_class_names),
        max_test_images=CFG["evaluation"]["max_test_images"],
        resolution=CFG["evaluation"]["resolution"],
        device=CFG["evaluation"]["device"],
    message:
        "Training {wildcards.model} (seed {wildcards.seed}) on {wildcards.set}"
    script:
        "../scripts/evaluate.py"


rule results_table:
    input:
        metrics=lambda w: [
            LAYOUT.metrics(r.key, model, seed)
            for r in eval_runs()
            for model in CFG["evaluation"]["models"]
            for seed in EVAL_RUNS.seeds(CFG, r)
        ],
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
        protocol=fixed(as_json(evaluation_record())),
        scores=fixed(as_json(CFG["evaluation"]["scores"])),
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
