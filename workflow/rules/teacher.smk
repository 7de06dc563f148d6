# The teacher (beyond the paper; src/gendistill/teacher/classifier.py): trained on the real training split with
# teacher.recipe, or imported from teacher.checkpoint. Only when something uses it (plan.teacher_uses):
# per-class candidate selection (selection.oversample > 1), soft labels (evaluation.labels: soft), the selection
# baselines (baselines.smk), the fidelity measure on its features (fidelity.smk), the teacher ablation
# (ablation.teacher).

# teacher.recipe: the evaluation's own recipe, a protocol's real-data one, or a published one (torchvision, SRe2L)
TEACHER_RECIPE = EVAL_RUNS.teacher_recipe(CFG, CFG["evaluation"]["resolution"] or PLAN.image_size)


rule teacher:
    input:
        checkpoint=CFG["teacher"]["checkpoint"] or [],
    output:
        model=LAYOUT.teacher,
        record=LAYOUT.teacher_json,
    log:
        f"{OUT}/logs/teacher.log",
    benchmark:
        f"{OUT}/benchmarks/teacher.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        model=CFG["teacher"]["model"],
        seed=CFG["teacher"]["seed"],
        recipe=as_json(TEACHER_RECIPE),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        num_classes=len(PLAN.all_class_names),
        resolution=CFG["evaluation"]["resolution"] or PLAN.image_size,
        mean=list(PLAN.mean),
        std=list(PLAN.std),
        max_test_images=CFG["evaluation"]["max_test_images"],
        device=CFG["evaluation"]["device"],
    message:
        (
            f"Teacher: importing {CFG['teacher']['checkpoint']}"
            if CFG["teacher"]["checkpoint"]
            else f"Teacher: training {CFG['teacher']['model']} on the real training split"
        )
    script:
        "../scripts/teacher.py"


# Per class: keep n_generated of the class's oversample x n_generated candidates. The criterion is a param here
# and nowhere upstream, so changing it reruns selection and what follows, never sampling. The same rule selects
# for the teacher ablation ({scope} ablation/teacher/, {criterion_dir} "<criterion>/"): per criterion and class,
# among the ablations' pool's first ablation.oversample x n_generated candidates; and for a generation method
# ({scope} ablation/methods/<name>/) among its own candidates, by its criterion (Plan.selection).
rule select:
    input:
        candidates=lambda w: PLAN.selection(w.scope, w.criterion_dir, w.cls)["candidates"],
        teacher=rules.teacher.output.model,
    output:
        images=directory(LAYOUT.scoped_selected()),
        scores=LAYOUT.scoped_selection_scores(),
    log:
        f"{OUT}/logs/{{scope}}select/{{criterion_dir}}{{cls}}.log",
    benchmark:
        f"{OUT}/benchmarks/{{scope}}select/{{criterion_dir}}{{cls}}.tsv"
    wildcard_constraints:
        scope=scopes(TEACHER_ABLATION),
        criterion_dir="({})?".format("|".join(f"{c}/" for c in PLAN.ablations.criteria)),
    conda:
        "../../envs/evaluation.yaml"
    resources:
        mem_mb=2000,
    params:
        criterion=lambda w: PLAN.selection(w.scope, w.criterion_dir, w.cls)["criterion"],
        n_keep=lambda w: PLAN.selection(w.scope, w.criterion_dir, w.cls)["n_keep"],
        n_candidates=lambda w: PLAN.selection(w.scope, w.criterion_dir, w.cls)["n_candidates"],
        band=CFG["selection"]["difficulty_band"],
        labels=[c.index for c in PLAN.classes],
        device=CFG["evaluation"]["device"],
    message:
        "Selecting {wildcards.scope}selected/{wildcards.criterion_dir}{wildcards.cls} among its candidates ({params.criterion})"
    script:
        "../scripts/select.py"


# The teacher's logits for every packaged image (after PDA): a sidecar of distilled.pt, aligned by index.
rule soft_labels:
    input:
        data=rules.package.output.tensor,
        teacher=rules.teacher.output.model,
    output:
        soft_labels=LAYOUT.soft_labels,
    log:
        f"{OUT}/logs/soft_labels.log",
    benchmark:
        f"{OUT}/benchmarks/soft_labels.tsv"
    conda:
        "../../envs/evaluation.yaml"
    resources:
        mem_mb=4000,
    params:
        temperature=CFG["evaluation"]["kd"]["temperature"],
        device=CFG["evaluation"]["device"],
    script:
        "../scripts/soft_labels.py"


# The teacher ablation (ablation.teacher): per criterion and class, the select rule's choice among the ablation
# pool's first ablation.oversample x n_generated candidates (shared with the PDA ablation), then PDA and packaging
# with the augment stage's code and seeds; evaluated by the evaluate rule, summarised in one table.
rule ablation_teacher_package:
    input:
        pool=lambda w: [LAYOUT.teacher_ablation_selected(w.criterion, c) for c in CLASS_IDS],
    output:
        augmented=directory(LAYOUT.teacher_ablation_set().augmented),
        tensor=LAYOUT.teacher_ablation_set().distilled,
        manifest=LAYOUT.teacher_ablation_set().manifest,
        folder=directory(LAYOUT.teacher_ablation_set().imagefolder),
    log:
        f"{OUT}/logs/ablation/teacher_package/{{criterion}}.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/teacher_package/{{criterion}}.tsv"
    wildcard_constraints:
        criterion="|".join(PLAN.ablations.criteria),
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=2000,
    params:
        variant=lambda w: as_json(PLAN.ablations.teacher_set_variant(w.criterion)),
        aug=as_json(CFG["augmentation"]),
        seeds=fixed(as_json({c.id: c.seed for c in PLAN.classes})),
        class_names=fixed(PLAN.all_class_names),
        mean=list(PLAN.mean),
        std=list(PLAN.std),
    script:
        "../scripts/ablation_package.py"


rule teacher_ablation_table:
    input:
        metrics=lambda w: [r["path"] for r in PLAN.ablations.teacher_metric_rows()],
        teacher=rules.teacher.output.record,
    output:
        table=report(
            LAYOUT.teacher_ablation,
            caption="../report/teacher_ablation.rst",
            category="Teacher ablation",
            subcategory="Data (CSV)",
        ),
        html=report(
            LAYOUT.results("teacher_ablation.html"),
            caption="../report/teacher_ablation.rst",
            category="Teacher ablation",
            subcategory="Accuracy",
        ),
        plot=report(
            LAYOUT.results("teacher_ablation.png"),
            caption="../report/teacher_ablation.rst",
            category="Teacher ablation",
            subcategory="Accuracy",
        ),
    log:
        f"{OUT}/logs/ablation/teacher_table.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/teacher_table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        variants=as_json(PLAN.ablations.teacher_variants),
        rows=as_json(PLAN.ablations.teacher_metric_rows()),
        model_kind=PLAN.model_kind,
    script:
        "../scripts/teacher_ablation_table.py"
