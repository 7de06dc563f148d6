# Post data augmentation: originals kept plus n_aug seeded copies each, for every class in one job (no torch).
# Its parameters are global and it costs milliseconds per image: one job, not one per class (a job per class
# costs more in process starts than the work). Sampling stays cached per class. Two worker processes, like the
# other CPU rules (a SLURM node smaller than a rule's threads never runs it); `--set-threads augment=16` for
# ImageNet-scale sets.


rule augment:
    input:
        generated=[PLAN.kept_images(c) for c in CLASS_IDS],  # selected/ with selection
    output:
        images=directory(LAYOUT.augmented),
    log:
        f"{OUT}/logs/augment.log",
    benchmark:
        f"{OUT}/benchmarks/augment.tsv"
    conda:
        "../../envs/augment.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        aug=as_json(CFG["augmentation"]),
        seeds=fixed(as_json({c.id: c.seed for c in PLAN.classes})),
    shell:
        '"$GENDISTILL_PYTHON" -m gendistill augment --generated {input.generated:q} --out {output.images:q}'
        " --params {params.aug:q} --seeds {params.seeds:q} --workers {threads} > {log:q} 2>&1"
