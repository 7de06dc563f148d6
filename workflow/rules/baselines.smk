# The selection baselines (evaluation.baselines.kmeans_real, .rded; gendistill.teacher.baselines): with the
# teacher, one job per baseline picks each class's images among its real training images (as many as the distilled
# set has), writes them in distilled.pt's format and records the picks with their scores. The evaluate rule trains
# on them like on the random real subset (Plan.evaluation).


rule select_baseline:
    input:
        teacher=LAYOUT.teacher,
    output:
        set=LAYOUT.baseline_set(),
        picks=LAYOUT.baseline_picks(),
    log:
        f"{OUT}/logs/baselines/{{baseline}}.log",
    benchmark:
        f"{OUT}/benchmarks/baselines/{{baseline}}.tsv"
    wildcard_constraints:
        baseline="|".join(EVAL_RUNS.SELECTION_BASELINES),
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        # the method, per label the images to pick, the seed and the method's settings
        selection=lambda w: as_json(PLAN.baseline_selection(w.baseline)),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        class_names=fixed(PLAN.all_class_names),
        device=CFG["evaluation"]["device"],
    message:
        "Selecting the {wildcards.baseline} baseline's images among the real training images with the teacher"
    script:
        "../scripts/select_baseline.py"
