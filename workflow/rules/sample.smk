# One job per class. Params hold exactly what determines that class's pixels, so editing one class's prompt,
# seed or count reruns only that class. Runtime knobs (batch size, sampler process, compile) are passed
# outside params: they do not change the images, so they do not trigger reruns.

LOAD = as_json(
    {
        "source": PLAN.model_source,
        "revision": CFG["model"]["revision"],
        "device": CFG["generation"]["device"],
        "dtype": CFG["generation"]["dtype"],
        "vae_dtype": CFG["generation"]["vae_dtype"],
    }
)
GEN = as_json({k: CFG["generation"][k] for k in ("resolution", "steps", "guidance_scale")})
# generation keys that decide pixels (recorded in the packaged dataset); the rest are runtime knobs
PIXEL_KEYS = ("n_generated", "resolution", "steps", "guidance_scale", "device", "dtype", "vae_dtype")
RUNTIME = as_json(
    {
        "server": CFG["generation"]["server"],
        "idle": CFG["generation"]["server_idle_seconds"],
        "batch_size": CFG["generation"]["batch_size"],
        "compile": CFG["generation"]["compile"],
        "deterministic": CFG["generation"]["deterministic"],
        "max_retries": CFG["generation"]["max_retries"],
    }
)


rule sample:
    input:
        model=sample_input,
    output:
        images=directory(f"{OUT}/generated/{{cls}}"),
    params:
        cls=lambda w: as_json(PLAN.by_id(w.cls).as_dict()),
        load=LOAD,
        gen=GEN,
        out_size=PLAN.image_size,
    log:
        f"{OUT}/logs/sample/{{cls}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample/{{cls}}.tsv"
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=30,
    message:
        "Sampling class {wildcards.cls}"
    conda:
        "../../envs/generation.yaml"
    shell:
        "{PYRUN} sample --load {params.load:q} --cls {params.cls:q} --gen {params.gen:q}"
        " --out-size {params.out_size} --out {output.images:q} --runtime '{RUNTIME}' > {log:q} 2>&1"
