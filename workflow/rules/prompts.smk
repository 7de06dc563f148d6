# The prompt table: one row per class, to read before spending GPU time (`snakemake prompts`).


rule prompts:
    output:
        table=LAYOUT.prompts,
    params:
        classes=fixed(as_json([c.as_dict() for c in PLAN.classes])),
    log:
        f"{OUT}/logs/prompts.log",
    benchmark:
        f"{OUT}/benchmarks/prompts.tsv"
    resources:
        mem_mb=500,
    conda:
        "../../envs/augment.yaml"
    shell:
        "{PYRUN} write-prompts --classes {params.classes:q} --out {output.table:q} > {log:q} 2>&1"
