# Post data augmentation per class: originals kept plus n_aug seeded copies each (no torch: a quick job).

AUG = as_json(CFG["augmentation"])


rule augment:
    input:
        images=f"{OUT}/generated/{{cls}}",
    output:
        images=directory(f"{OUT}/augmented/{{cls}}"),
    params:
        aug=AUG,
        seed=lambda w: PLAN.by_id(w.cls).seed,
    log:
        f"{OUT}/logs/augment/{{cls}}.log",
    benchmark:
        f"{OUT}/benchmarks/augment/{{cls}}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/augment.yaml"
    shell:
        "{PYRUN} augment --in {input.images:q} --out {output.images:q} --params {params.aug:q}"
        " --seed {params.seed} > {log:q} 2>&1"
