# The prompt table: one row per class, to read before spending GPU time (`snakemake prompts`).


rule prompts:
    output:
        table=LAYOUT.prompts,
    log:
        f"{OUT}/logs/prompts.log",
    benchmark:
        f"{OUT}/benchmarks/prompts.tsv"
    conda:
        "../../envs/augment.yaml"
    resources:
        mem_mb=500,
    params:
        classes=fixed(as_json([c.as_dict() for c in PLAN.classes])),
        # the same list in a private file: the prompts stay off the command line, which other users can read
        classes_file=lambda w: write_request(LAYOUT.requests, "prompts", [c.as_dict() for c in PLAN.classes]),
    shell:
        '"$GENDISTILL_PYTHON" -m gendistill write-prompts --classes-file {params.classes_file:q}'
        " --out {output.table:q} > {log:q} 2>&1"
