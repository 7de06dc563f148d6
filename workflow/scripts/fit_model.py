"""Snakemake script for rule `fit_model` (thin: the recipe is gendistill.generator.fit)."""

import sys

_TORCH_ALREADY_IMPORTED = "torch" in sys.modules
sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

# The fit runs many small kernels: spinning OpenMP threads make it 1.7x faster on idle cores and 1.8x slower beside
# busy processes (gendistill.openmp). Chosen before torch is imported (OpenMP reads it once); an OMP_WAIT_POLICY
# in the environment wins.
from gendistill.openmp import choose_wait_policy  # noqa: E402

_WAIT = choose_wait_policy(snakemake.threads)  # noqa: F821

import json  # noqa: E402

from gendistill.generator.fit import save_fitted_pipeline  # noqa: E402
from gendistill.logs import log_to  # noqa: E402

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    print(f"{_WAIT} (torch imported before it was set: {_TORCH_ALREADY_IMPORTED}); torch threads: {sm.threads}")
    identity = json.loads(sm.params.identity)
    report = save_fitted_pipeline(sm.output[0], identity["spec"], json.loads(sm.params.dataset), sm.threads)
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "seconds",
                    "vae_reconstruction_mse",
                    "text_class_loss",
                    "unet_final_loss",
                    "scaling_factor",
                    "sigma",
                )
            },
            indent=1,
        )
    )
