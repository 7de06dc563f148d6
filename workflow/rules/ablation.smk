# The PDA ablation (ablation.pda: true): the same generator and seeds, sets that differ only in images generated
# per class and augmented copies per image, each evaluated like the distilled set, beside random real subsets of
# the same IPCs. One pool per class holds the largest variant's images; a variant with fewer takes the first ones
# (image i has the same seed whatever the count), and augmented copy c of image i has the same seed in every
# variant, so variants differ only where they are meant to. The variants, the pool's size and which evaluations
# are the run's own are planned in gendistill.ablation.variants (Plan.ablations); the pool is sampled by the
# sample rule and the variants evaluated by the evaluate rule (scope ablation/).


rule ablation_package:
    input:
        pool=[LAYOUT.ablation_generated(c) for c in CLASS_IDS],
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
        variant="|".join(v["name"] for v in PLAN.ablations.pda_variants) or "NONE",
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=2000,
    params:
        variant=lambda w: as_json(PLAN.ablations.pda_variant(w.variant)),
        aug=as_json(CFG["augmentation"]),
        seeds=fixed(as_json({c.id: c.seed for c in PLAN.classes})),
        class_names=fixed(PLAN.all_class_names),
        mean=list(PLAN.mean),
        std=list(PLAN.std),
    script:
        "../scripts/ablation_package.py"


rule ablation_table:
    input:
        metrics=lambda w: [r["path"] for r in PLAN.ablations.pda_metric_rows()],
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
        variants=as_json(PLAN.ablations.pda_variants + PLAN.ablations.real_variants),
        rows=as_json(PLAN.ablations.pda_metric_rows()),
        model_kind=PLAN.model_kind,
    script:
        "../scripts/ablation_table.py"
