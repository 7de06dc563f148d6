"""Sampling: one class's images from a text-to-image pipeline, served by a resident sampler process.

Modules, from the pixels outwards (what is particular to a pipeline family, its adapter included, is in
`gendistill.families`):
* `pipeline`: load a diffusers pipeline from a load spec (hub id or local directory), VAE dtype, tiny decoder.
* `generate`: batched, seeded generation of one class, streamed batch by batch (memory bounded by the batch).
* `writer`: the job's side: PNGs written batch by batch into a private temp directory, published by one rename.
* `runtime`: the per-user private runtime directory, files opened without following symlinks, peer checks,
  the sampler's key (the resolved model and its files, environment, code hash).
* `code`: the package's code as the key names it (files on disk) and as the sampler ran it (bytes imported).
* `protocol`: the messages between a job and the sampler (framed JSON + raw image bytes), request validation.
* `server`: the resident sampler process.
* `client`: the per-class job: start or reach the sampler (one start path), stream, write, publish.

Why a resident sampler at all: docs/design/sampler.md.
"""
