# One job per class. Params hold exactly what determines that class's pixels, so editing one class's prompt,
# seed or count reruns only that class, and a changed model (replaced weights, a hub cache moved to a new
# snapshot) reruns every class. Runtime knobs (batch size, sampler process, compile, timeouts) are
# passed outside params (GENDISTILL_SAMPLER_RUNTIME, common.smk) and trigger no reruns: they do not decide the
# images (each image's noise is its own; a batch size may still move a value by one level through kernel
# rounding: README, Reproducibility).
# The job is a thin client of the resident sampler (src/gendistill/sampling/; docs/design/sampler.md). It reads
# what it samples from a request file (params.request), not from its command line, which other users can read.
# One rule for the run's images ({scope} empty: generated/<cls>, its candidates with selection), the ablations'
# pool (scope ablation/: ablation/generated/<cls>) and each generation method's candidates (scope
# ablation/methods/<name>/, with its generation settings); the plan says how many each samples (Plan.sampled).


if PLAN.prototypes_needed:

    # generation.init: prototypes / real_guidance: a class's real training images in the model's latent space,
    # k-means-clustered into its kept count (gendistill.prototypes). Per class: a class's real images (their
    # fingerprint), count, seed, resolution or the model decide it, and only its sample jobs read it (the run's
    # and its generation methods': one file per class serves them all).
    rule prototypes:
        input:
            model=model_input(),
        output:
            prototypes=LAYOUT.prototypes(),
        log:
            f"{OUT}/logs/prototypes/{{cls}}.log",
        benchmark:
            f"{OUT}/benchmarks/prototypes/{{cls}}.tsv"
        conda:
            "../../envs/generation.yaml"
        threads: 1
        resources:
            gpu=1,
            mem_mb=8000,
            runtime=30,
        params:
            spec=lambda w: as_json(PLAN.prototype_spec(w.cls)),
            dataset=fixed(as_json(CFG["dataset"])),
        message:
            "Encoding and clustering the real training images of {wildcards.cls} (prototypes)"
        script:
            "../scripts/prototypes.py"


rule sample:
    input:
        unpack(sample_inputs),
    output:
        images=directory(LAYOUT.scoped_generated()),
    log:
        f"{OUT}/logs/{{scope}}sample/{{cls}}.log",
    benchmark:
        f"{OUT}/benchmarks/{{scope}}sample/{{cls}}.tsv"
    wildcard_constraints:
        scope=scopes(ABLATION),
    conda:
        "../../envs/generation.yaml"
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    params:
        # the class plan, its n_generated the images this job samples (candidates, or the ablations' pool); with
        # generation from real data, its prototypes file and what decides that file (plan.Plan.sample_class)
        cls=lambda w: as_json(PLAN.sample_class(w.scope, w.cls)),
        # the model resolved: a hub id's snapshot, a local directory's content hash (read when the jobs are made:
        # after the input function's checks, which refuse a model this machine cannot hold before it is hashed)
        load=lambda w: as_json(PLAN.load_spec),
        gen=lambda w: as_json(PLAN.scoped_gen_spec(w.scope)),
        out_size=PLAN.image_size,
        # the same values in a private file: the job's command line (public) carries no prompt or model path
        request=lambda w: sample_request(w.scope, w.cls),
    message:
        "Sampling {wildcards.scope}generated/{wildcards.cls}"
    shell:
        '"$GENDISTILL_PYTHON" -m gendistill sample --request {params.request:q} --out {output.images:q}'
        ' --runtime "$GENDISTILL_SAMPLER_RUNTIME" > {log:q} 2>&1'
