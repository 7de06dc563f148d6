"""The sampler's load spec: what a sampler loads for a run, from its resolved config. The one definition: the plan
puts it in every sample job's params, with the model resolved (`resolve`), and `gendistill regenerate` rebuilds it
from a run's recorded config. (No torch here: the plan imports it.)"""

from __future__ import annotations

from pathlib import Path

from ..hf_cache import cached_snapshot
from ..model_files import content_sha256


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


def resolve(spec: dict, built: str | None = None, cache: Path | None = None) -> dict:
    """The load spec with its model and tiny decoder resolved to the weights they name now, so that the sample jobs'
    params change when the weights do: a hub id gets the snapshot commit the local cache resolves it to
    (`snapshot`: `hf download` of an updated model moves refs/main to a new one), a local directory the hash of
    its files' contents (`sha256`, model_files.content_sha256, each file's hash kept in `cache`); the tiny
    decoder likewise (`tiny_decoder_snapshot`, `tiny_decoder_sha256`). A hub id not in the cache is left as it is
    (its first sample job downloads it). So is a directory the workflow builds (`built`: the tiny or fitted demo
    model, and the tiny decoder inside it), which is an input of the sample rule instead: rebuilt, it reruns the
    classes, and it may not exist yet when the plan is made."""
    out = dict(spec)
    for key, prefix, revision in (("source", "", spec.get("revision")), ("tiny_decoder", "tiny_decoder_", None)):
        source = spec.get(key)
        if not source or (built and Path(source).resolve().is_relative_to(Path(built).resolve())):
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            out[prefix + "sha256"] = content_sha256(path, cache)
        elif not source.startswith((".", "/", "~")) and (found := cached_snapshot(source, revision)):
            out[prefix + "snapshot"] = found[0]
    return out
