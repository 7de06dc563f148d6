"""The sampler's load spec: what a sampler loads for a run, from its resolved config. The one definition: the plan
puts it in every sample job's params, and `gendistill regenerate` rebuilds it from a run's recorded config.
(No torch here: the plan imports it.)"""

from __future__ import annotations

from pathlib import Path


def load_spec(cfg: dict, source: str) -> dict:
    """The sampler's load spec for a (resolved) config and model source: the one definition.

    It is the sample jobs' `load` param, so what it holds decides pixels: the tiny decoder is added only when it
    is used, so that configs without it keep their params (and their cached classes)."""
    g = cfg["generation"]
    spec = {
        "source": source,
        "revision": cfg["model"]["revision"],
        "device": g["device"],
        "dtype": g["dtype"],
        "vae_dtype": g.get("vae_dtype", "auto"),
    }
    if g.get("decoder", "vae") != "vae":
        spec.update(decoder=g["decoder"], tiny_decoder=tiny_decoder_source(cfg, source))
    return spec


def tiny_decoder_source(cfg: dict, source: str) -> str | None:
    """generation.tiny_decoder; with model.tiny and none given, the tiny pipeline's own (its tiny_decoder/)."""
    given = cfg["generation"].get("tiny_decoder")
    if given or cfg["model"].get("tiny") is None:
        return given
    return str(Path(source) / "tiny_decoder")
