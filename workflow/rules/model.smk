# Demo/tests only: a tiny random-weight pipeline of one family's real component classes (model.tiny.family),
# with a matching tiny decoder, built offline.


if PLAN.model_dir:

    rule build_tiny_model:
        output:
            directory(PLAN.model_dir),
        params:
            spec=as_json(CFG["model"]["tiny"]),
        log:
            f"{OUT}/logs/build_tiny_model.log",
        benchmark:
            f"{OUT}/benchmarks/build_tiny_model.tsv"
        resources:
            mem_mb=2000,
        message:
            f"Building a tiny RANDOM-WEIGHT {CFG['model']['tiny'].get('family', 'sdxl')} pipeline (demo/tests: its images are noise)"
        conda:
            "../../envs/generation.yaml"
        shell:
            "{PYRUN} build-tiny-model --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"
