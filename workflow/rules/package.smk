# One distilled dataset: torch file with stored labels, ImageFolder PNG tree, manifest.csv, provenance.json.


rule package:
    input:
        augmented=rules.augment.output.images,
        prompts=rules.prompts.output.table,
        teacher=LAYOUT.teacher_json if PLAN.run_uses_teacher else [],  # its record (sha256) goes into the provenance
    output:
        tensor=LAYOUT.distilled,
        manifest=LAYOUT.manifest,
        folder=directory(LAYOUT.imagefolder),
        provenance=LAYOUT.provenance,
    log:
        f"{OUT}/logs/package.log",
    benchmark:
        f"{OUT}/benchmarks/package.tsv"
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=4000,
    params:
        class_names=fixed(PLAN.all_class_names),
        mean=list(PLAN.mean),
        std=list(PLAN.std),
        image_size=PLAN.image_size,
        random_weights=PLAN.model_kind == "tiny",
        model_kind=PLAN.model_kind,
        time_budget=fixed(
            as_json(read_time_budget_record(CFG["time_budget_record"]) if CFG["time_budget_record"] else None)
        ),
        # only when the run uses a teacher: the paper's method keeps its params (and its cached package)
        config=fixed(
            as_json(
                {
                    **PLAN.recorded_config,
                    **(
                        {
                            "teacher": CFG["teacher"],
                            "selection": CFG["selection"],
                            "labels": CFG["evaluation"]["labels"],
                            "kd": EVAL_RUNS.kd_settings(CFG),
                        }
                        if PLAN.run_uses_teacher
                        else {}
                    ),
                }
            )
        ),
    script:
        "../scripts/package.py"
