# Evaluation: each (training set, model, training seed) is its own job, so adding a seed or a model reruns
# only that job. Sets: the distilled set, a seeded random real subset of the same IPC, the full real set.

RECIPE = {
    k: CFG["evaluation"][k]
    for k in ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule", "train_augment")
}
DATASET = as_json(CFG["dataset"])


rule evaluate:
    input:
        data=lambda w: f"{OUT}/dataset/distilled.pt" if w.set == "distilled" else [],
    output:
        metrics=f"{OUT}/eval/{{set}}/{{model}}/seed{{seed}}.json",
    params:
        recipe=lambda w: as_json(
            {
                **RECIPE,
                "epochs": (CFG["evaluation"]["baselines"]["full_epochs"] or RECIPE["epochs"])
                if w.set == "full"
                else RECIPE["epochs"],
            }
        ),
        dataset=DATASET,
        labels=[c.index for c in PLAN.classes],
        per_class_counts=lambda w: (
            as_json({c.index: c.n_generated * (1 + CFG["augmentation"]["n_aug"]) for c in PLAN.classes})
            if w.set == "random_subset"
            else ""
        ),
        num_classes=len(PLAN.all_class_names),
        max_test_images=CFG["evaluation"]["max_test_images"],
        device=CFG["evaluation"]["device"],
    log:
        f"{OUT}/logs/evaluate/{{set}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate/{{set}}/{{model}}/seed{{seed}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    message:
        "Training {wildcards.model} (seed {wildcards.seed}) on the {wildcards.set} set"
    script:
        "../scripts/evaluate.py"


rule results_table:
    input:
        metrics=lambda w: expand(
            f"{OUT}/eval/{{set}}/{{model}}/seed{{seed}}.json",
            set=eval_sets(),
            model=CFG["evaluation"]["models"],
            seed=CFG["evaluation"]["seeds"],
        ),
    output:
        table=f"{OUT}/results/results.csv",
        summary=f"{OUT}/results/summary.csv",
    log:
        f"{OUT}/logs/results_table.log",
    benchmark:
        f"{OUT}/benchmarks/results_table.tsv"
    resources:
        mem_mb=1000,
    script:
        "../scripts/results_table.py"
