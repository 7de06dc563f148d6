"""Generative dataset distillation: a text-to-image diffusion model -> a small labelled training set.

Importing this package is cheap on purpose (no torch): the per-class Snakemake jobs are thin processes.
"""

__version__ = "0.1.0"
