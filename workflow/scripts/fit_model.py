"""Snakemake script for rule `fit_model` (thin: the recipe is gendistill.model_fit)."""
import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.logs import log_to
from gendistill.model_fit import save_fitted_pipeline

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    identity = json.loads(sm.params.identity)
    report = save_fitted_pipeline(sm.output[0], identity["spec"], json.loads(sm.params.dataset), sm.threads)
    print(json.dumps({k: report[k] for k in ("seconds", "vae_reconstruction_mse", "unet_final_loss",
                                             "scaling_factor", "sigma")}, indent=1))
