# Demo/tests only: the generator is built offline instead of loaded from model.source. Either a tiny
# RANDOM-WEIGHT pipeline of one family's real component classes (model.tiny, with model.tiny.family and a matching
# tiny decoder: fast, images are noise), or SDXL-Turbo's classes FITTED to the demo dataset's training split
# (model.fitted: a stand-in for a pretrained model whose images show the prompted class). Each is cached under
# results/models/, keyed by a hash of what decides it.
from gendistill.plan import fitted_model_identity

if PLAN.model_kind == "tiny":

    rule build_tiny_model:
        output:
            directory(PLAN.model_dir),
        log:
            f"{OUT}/logs/build_tiny_model.log",
        benchmark:
            f"{OUT}/benchmarks/build_tiny_model.tsv"
        conda:
            "../../envs/generation.yaml"
        resources:
            mem_mb=2000,
        params:
            spec=as_json(CFG["model"]["tiny"]),
        message:
            f"Building a tiny RANDOM-WEIGHT {CFG['model']['tiny'].get('family', 'sdxl')} pipeline (demo/tests: its images are noise)"
        shell:
            '"$GENDISTILL_PYTHON" -m gendistill build-tiny-model --spec {params.spec:q} --out {output:q}'
            " > {log:q} 2>&1"


if PLAN.model_kind == "fitted":

    rule fit_model:
        output:
            directory(PLAN.model_dir),
        log:
            f"{OUT}/logs/fit_model.log",
        benchmark:
            f"{OUT}/benchmarks/fit_model.tsv"
        conda:
            "../../envs/generation.yaml"
        threads: 2
        resources:
            mem_mb=3000,
            runtime=30,
        params:
            # the spec (defaults filled), the data it is fitted to and the recipe version: the directory's hash.
            # A function: the templates' {name} must not be read as a wildcard.
            identity=lambda w: as_json(fitted_model_identity(CFG)),
            # it learns every class of the dataset: the run's selection (dataset.classes) is not its input, so a
            # run of other classes reuses it
            dataset=fixed(as_json({**CFG["dataset"], "classes": None})),
        message:
            f"Fitting the demo's stand-in generator (SDXL-Turbo's component classes) to the TRAINING split of "
            f"{CFG['dataset']['name']}: VAE, then UNet + text encoders through one sampling step"
        script:
            "../scripts/fit_model.py"
