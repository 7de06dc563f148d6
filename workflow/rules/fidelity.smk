# Fidelity and diversity of every evaluated set against the real test split (evaluation.fidelity;
# gendistill.fidelity): precision, recall, density, coverage and the Frechet distance in the recogniser's (or the
# teacher's) feature space, one row per set in results/fidelity.csv, and the report's table.


rule fidelity:
    input:
        # the network whose penultimate features the metrics compare: the recogniser (its weights and record), or
        # the teacher
        model=LAYOUT.teacher if CFG["evaluation"]["fidelity"]["features"] == "teacher" else LAYOUT.recogniser,
        info=[] if CFG["evaluation"]["fidelity"]["features"] == "teacher" else LAYOUT.recogniser_json,
        sets=[s["file"] for s in PLAN.fidelity_spec if "file" in s],
    output:
        table=report(
            LAYOUT.fidelity,
            caption="../report/fidelity.rst",
            category="Evaluation",
            subcategory="Fidelity and diversity",
        ),
    log:
        f"{OUT}/logs/fidelity.log",
    benchmark:
        f"{OUT}/benchmarks/fidelity.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        # the sets in table order: a packaged set's file, the random subset's counts and seeds, the full split
        sets=fixed(as_json(PLAN.fidelity_spec)),
        features=CFG["evaluation"]["fidelity"]["features"],
        nearest_k=CFG["evaluation"]["fidelity"]["nearest_k"],
        max_images=CFG["evaluation"]["fidelity"]["max_images"],
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        max_test_images=CFG["evaluation"]["max_test_images"],
        device=CFG["evaluation"]["device"],
    message:
        "Fidelity and diversity of every evaluated set against the real test split ({params.features} features)"
    script:
        "../scripts/fidelity.py"


rule fidelity_table:
    input:
        table=rules.fidelity.output.table,
    output:
        html=report(
            LAYOUT.results("fidelity.html"),
            caption="../report/fidelity.rst",
            category="Evaluation",
            subcategory="Fidelity and diversity",
        ),
    log:
        f"{OUT}/logs/fidelity_table.log",
    benchmark:
        f"{OUT}/benchmarks/report/fidelity_table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    script:
        "../scripts/fidelity_table.py"
