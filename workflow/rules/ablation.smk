# The PDA ablation (ablation.pda: true): the same generator and seeds, sets that differ only in images generated
# per class and augmented copies per image, each evaluated like the distilled set, beside random real subsets of
# the same IPCs. One pool per class holds the largest variant's images; a variant with fewer takes the first ones
# (image i has the same seed whatever the count), and augmented copy c of image i has the same seed in every
# variant, so variants differ only where they are meant to.

ABLATION_NAMES = [v["name"] for v in ablation_variants()]
ABLATION_REAL = [v["name"] for v in ablation_real_variants()]
TEACHER_ABLATION_NAMES = [v["name"] for v in teacher_ablation_variants()]


rule ablation_sample:
    input:
        model=sample_model_input,
    output:
        images=directory(LAYOUT.ablation_generated()),
    log:
        f"{OUT}/logs/ablation/sample/{{cls}}.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/sample/{{cls}}.tsv"
    conda:
        "../../envs/generation.yaml"
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        cls=lambda w: as_json({**PLAN.by_id(w.cls).as_dict(), "n_generated": ablation_pool_size(PLAN.by_id(w.cls))}),
        load=fixed(as_json(PLAN.load_spec)),
        gen=fixed(as_json(PLAN.gen_spec)),
        out_size=PLAN.image_size,
        request=lambda w: sample_request(w.cls, ablation_pool_size(PLAN.by_id(w.cls))),
    message:
        "Sampling the ablation pool of class {wildcards.cls}"
    shell:
        '"$GENDISTILL_PYTHON" -m gendistill sample --request {params.request:q} --out {output.images:q}'
        ' --runtime "$GENDISTILL_SAMPLER_RUNTIME" > {log:q} 2>&1'


rule ablation_package:
    input:
        pool=expand(rules.ablation_sample.output.images, cls=CLASS_IDS),
    output:
        augmented=directory(LAYOUT.ablation_set().augmented),
        tensor=LAYOUT.ablation_set().distilled,
        manifest=LAYOUT.ablation_set().manifest,
        folder=directory(LAYOUT.ablation_set().imagefolder),
    log:
        f"{OUT}/logs/ablation/package/{{variant}}.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/package/{{variant}}.tsv"
    wildcard_constraints:
        variant="|".join(ABLATION_NAMES) or "NONE",
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=2000,
    params:
        variant=lambda w: as_json(next(v for v in ablation_variants() if v["name"] == w.variant)),
        aug=as_json(CFG["augmentation"]),
        seeds=fixed(as_json({c.id: c.seed for c in PLAN.classes})),
        class_names=fixed(PLAN.all_class_names),
        mean=list(PLAN.mean),
        std=list(PLAN.std),
    script:
        "../scripts/ablation_package.py"


rule ablation_evaluate:
    input:
        data=lambda w: ablation_eval_spec(w.variant)["data"] or [],
        soft_labels=lambda w: (
            LAYOUT.soft_labels
            if ablation_eval_spec(w.variant)["labels"] == "soft"
            and ablation_eval_spec(w.variant)["set"] == "distilled"
            else []
        ),
        teacher=lambda w: (
            LAYOUT.teacher
            if ablation_eval_spec(w.variant)["labels"] == "soft"
            and ablation_eval_spec(w.variant)["set"] == "random_subset"
            else []
        ),
    output:
        metrics=LAYOUT.ablation_metrics(),
    log:
        f"{OUT}/logs/ablation/evaluate/{{variant}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/evaluate/{{variant}}/{{model}}/seed{{seed}}.tsv"
    wildcard_constraints:
        variant="|".join(ABLATION_NAMES + ABLATION_REAL + TEACHER_ABLATION_NAMES) or "NONE",
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        set_name=lambda w: ablation_eval_spec(w.variant)["set"],
        label_regime=lambda w: ablation_eval_spec(w.variant)["labels"],
        kd=lambda w: KD if ablation_eval_spec(w.variant)["labels"] == "soft" else "",
        recipe=lambda w: as_json(
            {
                **RECIPE,
                "epochs": (
                    (CFG["evaluation"]["baselines"]["full_epochs"] or RECIPE["epochs"])
                    if ablation_eval_spec(w.variant)["set"] == "full"
                    else RECIPE["epochs"]
                ),
            }
        ),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        per_class_counts=lambda w: (
            as_json(ablation_eval_spec(w.variant)["counts"]) if ablation_eval_spec(w.variant).get("counts") else ""
        ),
        num_classes=len(PLAN.all_class_names),
        max_test_images=CFG["evaluation"]["max_test_images"],
        resolution=CFG["evaluation"]["resolution"],
        device=CFG["evaluation"]["device"],
    message:
        "Ablation: training {wildcards.model} (seed {wildcards.seed}) on {wildcards.variant}"
    script:
        "../scripts/evaluate.py"


rule ablation_table:
    input:
        metrics=ablation_metrics,
    output:
        table=report(
            LAYOUT.ablation,
            caption="../report/ablation_csv.rst",
            category="Ablation: PDA",
            subcategory="Data (CSV)",
        ),
        html=report(
            LAYOUT.results("ablation.html"),
            caption="../report/ablation.rst",
            category="Ablation: PDA",
            subcategory="Accuracy",
        ),
        plot=report(
            LAYOUT.results("ablation.png"),
            caption="../report/ablation.rst",
            category="Ablation: PDA",
            subcategory="Accuracy",
        ),
    log:
        f"{OUT}/logs/ablation/table.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        variants=as_json(ablation_variants() + ablation_real_variants()),
        rows=as_json(ablation_metric_rows()),
        model_kind=PLAN.model_kind,
    script:
        "../scripts/ablation_table.py"
