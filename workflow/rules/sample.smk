# One job per class. Params hold exactly what determines that class's pixels, so editing one class's prompt,
# seed or count reruns only that class. Runtime knobs (batch size, sampler process, compile, timeouts) are
# passed outside params: they do not change the images, so they do not trigger reruns.
# The job is a thin client of the resident sampler (src/gendistill/sampling/; docs/design/sampler.md).

LOAD = {
    "source": PLAN.model_source,
    "revision": CFG["model"]["revision"],
    "device": CFG["generation"]["device"],
    "dtype": CFG["generation"]["dtype"],
    "vae_dtype": CFG["generation"]["vae_dtype"],
}
GEN = {k: CFG["generation"][k] for k in ("resolution", "steps", "guidance_scale")}
RUNTIME = {
    "server": CFG["generation"]["server"],
    "idle": CFG["generation"]["server_idle_seconds"],
    "server_timeout": CFG["generation"]["server_timeout_seconds"],
    "batch_size": CFG["generation"]["batch_size"],
    "compile": CFG["generation"]["compile"],
    "deterministic": CFG["generation"]["deterministic"],
    "max_retries": CFG["generation"]["max_retries"],
}
RUNTIME_ARG = shlex.quote(as_json(RUNTIME))


def sample_model_input(wildcards):
    """The sample rule's input: the tiny model directory, if any (a real model is a param).

    Also the hook that starts a SLURM job's sampler in the job's batch step (client.start_for_slurm_batch_step):
    an input function is the only workflow code that runs there before the job's `srun` steps (Snakemake runs
    spawned jobs with --no-hooks, so `onstart:` does not). Elsewhere it does nothing; once per process.
    """
    if (
        not _SLURM_SAMPLER_CHECKED
        and CFG["generation"]["server"]
        and not uses_conda()
        and not workflow.dryrun
    ):
        from gendistill.sampling.client import start_for_slurm_batch_step

        start_for_slurm_batch_step(LOAD, RUNTIME)
    _SLURM_SAMPLER_CHECKED.append(True)
    return model_input()


_SLURM_SAMPLER_CHECKED = []


rule sample:
    input:
        model=sample_model_input,
    output:
        images=directory(f"{OUT}/generated/{{cls}}"),
    params:
        cls=lambda w: as_json(PLAN.by_id(w.cls).as_dict()),
        load=fixed(as_json(LOAD)),
        gen=fixed(as_json(GEN)),
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
        " --out-size {params.out_size} --out {output.images:q} --runtime {RUNTIME_ARG} > {log:q} 2>&1"
