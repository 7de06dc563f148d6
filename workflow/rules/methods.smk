# Generation methods compared in one run (ablation.methods; gendistill.ablation.variants): each a set made like the
# run's own distilled set with some generation and selection keys overridden. Its per-class candidates are the
# sample rule's and its selection the select rule's, in its scope ablation/methods/<name>/ (a class's prototypes
# file is the run's); here its package (the run's post data augmentation, same code and per-copy seeds, then
# packaging as set.pt in distilled.pt's format) and, for the soft regime, its soft labels. The evaluate rule trains
# on it under the distilled set's evaluation keys (Plan.evaluation); its rows are method:<name>.


rule methods_package:
    input:
        pool=lambda w: [PLAN.ablations.method_kept(w.method, c) for c in CLASS_IDS],  # its kept images
    output:
        augmented=directory(LAYOUT.method_set().augmented),
        tensor=LAYOUT.method_set().distilled,
        manifest=LAYOUT.method_set().manifest,
        folder=directory(LAYOUT.method_set().imagefolder),
    log:
        f"{OUT}/logs/ablation/methods/{{method}}/package.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/methods/{{method}}/package.tsv"
    wildcard_constraints:
        method=METHOD_NAMES,
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=2000,
    params:
        # its classes' kept counts and n_aug, and what made it (its generation and selection, resolved)
        variant=lambda w: as_json(PLAN.ablations.method_set_variant(w.method)),
        aug=as_json(CFG["augmentation"]),
        seeds=fixed(as_json({c.id: c.seed for c in PLAN.classes})),
        class_names=fixed(PLAN.all_class_names),
        mean=list(PLAN.mean),
        std=list(PLAN.std),
    message:
        "Packaging the set of generation method {wildcards.method}"
    script:
        "../scripts/ablation_package.py"


# The teacher's logits for every image of a method's set (evaluation.labels soft), as rule soft_labels for the
# distilled set: a sidecar aligned with its set.pt by index.
rule methods_soft_labels:
    input:
        data=LAYOUT.method_set().distilled,
        teacher=LAYOUT.teacher,
    output:
        soft_labels=LAYOUT.method_set().soft_labels,
    log:
        f"{OUT}/logs/ablation/methods/{{method}}/soft_labels.log",
    benchmark:
        f"{OUT}/benchmarks/ablation/methods/{{method}}/soft_labels.tsv"
    wildcard_constraints:
        method=METHOD_NAMES,
    conda:
        "../../envs/evaluation.yaml"
    resources:
        mem_mb=4000,
    params:
        temperature=CFG["evaluation"]["kd"]["temperature"],
        device=CFG["evaluation"]["device"],
    script:
        "../scripts/soft_labels.py"
