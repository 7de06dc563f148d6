# Evaluation: each (training set, model, training seed) is its own job, so adding a seed or a model reruns
# only that job. Sets: the distilled set, a seeded random real subset of the same IPC, the full real set.

RECIPE = {
    k: CFG["evaluation"][k]
    for k in ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule", "train_augment")
}
DATASET = as_json(CFG["dataset"])


KD = as_json(CFG["evaluation"]["kd"])


rule evaluate:
    input:
        data=lambda w: rules.package.output.tensor if w.set == "distilled" else [],
        # soft labels: the package's sidecar for the distilled set, the teacher itself for the real subset
        soft_labels=lambda w: (
            LAYOUT.soft_labels if w.set == "distilled" and eval_label_regime(w.set) == "soft" else []
        ),
        teacher=lambda w: LAYOUT.teacher if w.set == "random_subset" and eval_label_regime(w.set) == "soft" else [],
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
        set_name=lambda w: w.set,
        label_regime=lambda w: eval_label_regime(w.set),
        kd=lambda w: KD if eval_label_regime(w.set) == "soft" else "",
        recipe=lambda w: as_json(
            {
                **RECIPE,
                "epochs": (
                    (CFG["evaluation"]["baselines"]["full_epochs"] or RECIPE["epochs"])
                    if w.set == "full"
                    else RECIPE["epochs"]
                ),
            }
        ),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        per_class_counts=lambda w: (
            as_json({c.index: c.n_generated * (1 + CFG["augmentation"]["n_aug"]) for c in PLAN.classes})
            if w.set == "random_subset"
            else ""
        ),
        num_classes=len(PLAN.all_class_names),
        max_test_images=CFG["evaluation"]["max_test_images"],
        resolution=CFG["evaluation"]["resolution"],
        device=CFG["evaluation"]["device"],
    message:
        "Training {wildcards.model} (seed {wildcards.seed}) on the {wildcards.set} set"
    script:
        "../scripts/evaluate.py"


rule results_table:
    input:
        metrics=lambda w: expand(
            rules.evaluate.output.metrics,
            set=eval_sets(),
            model=CFG["evaluation"]["models"],
            seed=CFG["evaluation"]["seeds"],
        ),
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
