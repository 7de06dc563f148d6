# One job per class. Params hold exactly what determines that class's pixels, so editing one class's prompt,
# seed or count reruns only that class. Runtime knobs (batch size, sampler process, compile, timeouts) are
# passed outside params (GENDISTILL_SAMPLER_RUNTIME, common.smk) and trigger no reruns: they do not decide the
# images (each image's noise is its own; a batch size may still move a value by one level through kernel
# rounding: README, Reproducibility).
# The job is a thin client of the resident sampler (src/gendistill/sampling/; docs/design/sampler.md). It reads
# what it samples from a request file (params.request), not from its command line, which other users can read.


rule sample:
    input:
        model=sample_model_input,
    output:
        images=directory(LAYOUT.generated()),
    log:
        f"{OUT}/logs/sample/{{cls}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample/{{cls}}.tsv"
    conda:
        "../../envs/generation.yaml"
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        # n_generated: the candidates (oversample x n_generated; the same dict without selection)
        cls=lambda w: as_json({**PLAN.by_id(w.cls).as_dict(), "n_generated": n_candidates(PLAN.by_id(w.cls))}),
        load=fixed(as_json(PLAN.load_spec)),
        gen=fixed(as_json(PLAN.gen_spec)),
        out_size=PLAN.image_size,
        # the same values in a private file: the job's command line (public) carries no prompt or model path
        request=lambda w: sample_request(w.cls, n_candidates(PLAN.by_id(w.cls))),
    message:
        "Sampling class {wildcards.cls}"
    shell:
        '"$GENDISTILL_PYTHON" -m gendistill sample --request {params.request:q} --out {output.images:q}'
        ' --runtime "$GENDISTILL_SAMPLER_RUNTIME" > {log:q} 2>&1'
