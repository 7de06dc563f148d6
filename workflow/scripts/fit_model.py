"""Snakemake script for rule `fit_model` (thin: the recipe is gendistill.generator.fit)."""

import os
import sys

# The fit runs many small kernels; with busy-waiting OpenMP threads, any other load on the cores (another job, a
# second user) slows each step 3-10x (measured). Passive waiting costs little when the cores are free. Set before
# torch is imported (OpenMP reads it once); an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_TORCH_ALREADY_IMPORTED = "torch" in sys.modules

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

import json  # noqa: E402

from gendistill.generator.fit import save_fitted_pipeline  # noqa: E402
from gendistill.logs import log_to  # noqa: E402

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    print(
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} (torch imported before it was set: "
        f"{_TORCH_ALREADY_IMPORTED}); torch threads: {sm.threads}"
    )
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
