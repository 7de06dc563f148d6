# Report items: per-class sample grids, the prompt table, per-stage run times (from the benchmark files).
# `snakemake --report report.html` gathers every output wrapped in report(...) (evaluation items live in
# evaluate.smk and join only when evaluation is active). REPORT, report_items() and report_outputs() live in
# common.smk: functions next to rules in one file trip the linter.


rule sample_grids:
    input:
        augmented=rules.augment.output.images,
    output:
        grids=report(
            directory(f"{REPORT}/samples"),
            patterns=["{name}.png"],
            caption="../report/samples.rst",
            category="Samples",
            subcategory="Per class",
            labels={"class": "{name}"},
        ),
        overview=report(
            f"{REPORT}/samples_overview.png",
            caption="../report/samples_overview.rst",
            category="Samples",
            subcategory="Overview",
        ),
    log:
        f"{OUT}/logs/report/sample_grids.log",
    benchmark:
        f"{OUT}/benchmarks/report/sample_grids.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        classes=fixed(as_json([c.as_dict() for c in PLAN.classes])),
        max_rows=8,
        max_classes=CFG["report"]["max_class_grids"],
    script:
        "../scripts/sample_grids.py"


rule prompts_table:
    input:
        prompts=rules.prompts.output.table,
    output:
        table=report(f"{REPORT}/prompts.html", caption="../report/prompts.rst", category="Prompts"),
    log:
        f"{OUT}/logs/report/prompts_table.log",
    benchmark:
        f"{OUT}/benchmarks/report/prompts_table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=500,
    script:
        "../scripts/prompts_table.py"


rule runtimes:
    input:
        done=lambda w: pipeline_outputs() + report_items() + measure_outputs(),
    output:
        table=report(f"{REPORT}/runtimes.csv", caption="../report/runtimes_csv.rst", category="Run times"),
        html=report(f"{REPORT}/runtimes.html", caption="../report/runtimes.rst", category="Run times"),
        plot=report(f"{REPORT}/runtimes.png", caption="../report/runtimes.rst", category="Run times"),
    log:
        f"{OUT}/logs/report/runtimes.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        benchmarks=LAYOUT.benchmarks,
    script:
        "../scripts/runtimes.py"
