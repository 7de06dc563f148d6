"""Load a diffusers pipeline of a supported family from a load spec (hub id or local directory; HF_HUB_OFFLINE
honoured), optionally with a tiny decoder in place of its VAE."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..devices import resolve_device
from ..families import adapter_for, family_of
from ..families.base import autoencoder_facts
from ..pipeline_memory import GIB, alternatives, available_bytes, estimate, fixes
from ..weights import HeaderError, pipeline_problems

log = logging.getLogger("gendistill.sampler")

VAE_DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def load_pipeline(
    source: str,
    revision: str | None,
    device: str,
    dtype: torch.dtype,
    compile_unet: bool = False,
    deterministic: bool = False,
    vae_dtype: str = "auto",
    decoder: str = "vae",
    tiny_decoder: str | None = None,
    tiny_decoder_revision: str | None = None,
    check_memory: bool = True,
):
    """Load a diffusers pipeline of a supported family (gendistill.families) from a hub id or a local directory
    (HF_HUB_OFFLINE honoured). decoder "tiny": the pipeline's VAE is replaced by the AutoencoderTiny at
    `tiny_decoder` (a local directory or hub id). compile_unet: torch.compile the denoiser (UNet or transformer).
    check_memory: refuse, before loading, a pipeline whose weights do not fit in the device's memory
    (check_memory_fits).
    """
    from diffusers import DiffusionPipeline  # deferred (here and below): heavy; the other helpers need only torch

    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    kwargs = {"dtype": dtype}
    if revision:
        kwargs["revision"] = revision
    if dtype == torch.float16 and not Path(source).exists():
        kwargs["variant"] = "fp16"  # the hub checkpoint ships fp16 weights: half the download and load time
    if check_memory:
        check_memory_fits(source, revision, device, dtype, vae_dtype, kwargs.get("variant"))
    variant = kwargs.get("variant")
    try:
        try:
            pipe = DiffusionPipeline.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as e:
            if "variant" not in kwargs:
                raise
            log.info("no fp16 variant (%s); loading the default weights", e)
            kwargs.pop("variant")
            pipe = DiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as e:
        if problems := weight_file_problems(source, revision, variant):
            raise WeightsError(
                f"{source} cannot be loaded: {'; '.join(problems[:6])} (the load failed with {type(e).__name__}: "
                f"{str(e)[:500]}). Fix: download the model again, or `save_pretrained` it there."
            ) from e
        raise
    adapter = adapter_for(pipe, device)  # an unsupported pipeline class fails here, naming the supported ones
    if decoder == "tiny":
        use_tiny_decoder(pipe, tiny_decoder, dtype, tiny_decoder_revision)
    elif decoder != "vae":
        raise ValueError(f"decoder {decoder!r}: expected 'vae' or 'tiny'")
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if device == "cuda":  # the convolution-heavy modules; a transformer's compute is matmuls either way
        for name in ("unet", "vae"):
            if isinstance(getattr(pipe, name, None), torch.nn.Module):
                getattr(pipe, name).to(memory_format=torch.channels_last)
    configure_vae(pipe, vae_dtype)
    if compile_unet:
        name = adapter.denoiser
        setattr(
            pipe, name, torch.compile(getattr(pipe, name), mode="max-autotune-no-cudagraphs", fullgraph=name == "unet")
        )
    return pipe


class WeightsError(ValueError):
    """A weight file of the pipeline is truncated or corrupt; str() names each file and what is wrong with it."""


def weight_file_problems(source: str, revision: str | None, variant: str | None) -> list[str]:
    """What the plan's weight check (gendistill.weights) finds wrong with the files a load of `source` read, each
    naming its file: so a load that fails on one says which (diffusers' errors may name a tensor, not its file)."""
    from .runtime import model_dir

    root = model_dir(source, revision)
    if root is None:
        return []
    try:
        return [f"{root}/{p}" for p in pipeline_problems(root, {variant})]
    except (OSError, ValueError):
        return []


class DeviceMemoryError(MemoryError):
    """The pipeline would not fit in the device's memory; str() gives the figures and the fixes."""


def device_room(device: str) -> tuple[int, str] | None:
    """(bytes, what) the pipeline may take on `device`: the GPU's free memory, or the host's available memory."""
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free, f"free on {torch.cuda.get_device_name()}"
    return available_bytes()


def check_memory_fits(source: str, revision: str | None, device: str, dtype, vae_dtype: str, variant) -> None:
    """Refuse, before from_pretrained, a pipeline whose weights and the process (pipeline_memory: no activations,
    which depend on each request's resolution and batch) exceed the device's room; DeviceMemoryError names both
    figures and the fixes. A hub id not in the local cache is not checked (nothing to read yet)."""
    from .runtime import model_dir

    root = model_dir(source, revision)
    if root is None or device not in ("cpu", "cuda"):
        return
    name = str(dtype).removeprefix("torch.")
    try:
        est = estimate(root, name, 0, 0, 0.0, vae_dtype, variant)
    except (HeaderError, KeyError, TypeError, ValueError):
        return  # from_pretrained names the file
    room = device_room(device)
    if room is None or est.total <= room[0]:
        log.info(
            "memory: the pipeline needs about %s; %s", est.describe(), room and f"{room[0] / GIB:.1f} GiB {room[1]}"
        )
        return
    raise DeviceMemoryError(
        f"{source} needs about {est.total / GIB:.1f} GiB on {device} in {name} before sampling anything (weights "
        f"{est.weights / GIB:.1f} GiB: "
        + ", ".join(f"{k} {v / GIB:.1f}" for k, v in sorted(est.components.items(), key=lambda kv: -kv[1]))
        + f"; the process {est.overhead / GIB:.1f}), but {room[0] / GIB:.1f} GiB are {room[1]}: loading it would "
        f"get this process killed by the kernel (or run out of GPU memory). Fix: "
        + fixes(est, alternatives(est, lambda d, _b, _dec: estimate(root, d, 0, 0, 0.0, vae_dtype, variant)), room[0])
        + "."
    )


def use_tiny_decoder(pipe, source: str | None, dtype: torch.dtype, revision: str | None = None) -> None:
    """Replace the pipeline's VAE by the AutoencoderTiny at `source`, after checking that it decodes this
    pipeline's latents (same channels, same scale)."""
    from diffusers import AutoencoderTiny

    if not source:
        raise ValueError(
            "decoder 'tiny' needs tiny_decoder (a local AutoencoderTiny directory or hub id). Fix: "
            "set generation.tiny_decoder."
        )
    tae = AutoencoderTiny.from_pretrained(source, dtype=dtype, **({"revision": revision} if revision else {}))
    have, want = autoencoder_facts(dict(tae.config)), autoencoder_facts(dict(pipe.vae.config))
    if (have["latent_channels"], have["scale"]) != (want["latent_channels"], want["scale"]):
        raise ValueError(
            f"tiny decoder {source}: decodes {have['latent_channels']}-channel latents at "
            f"{have['scale']}x, but this {type(pipe).__name__} makes {want['latent_channels']}-channel "
            f"latents at {want['scale']}x. Fix: the AutoencoderTiny made for this family (README, "
            f"Supported generators), or generation.decoder: vae."
        )
    tae.eval()
    pipe.vae = tae


def load_from_spec(load: dict):
    """(pipe, device, dtype) from a load spec: source, revision, device, dtype, vae_dtype, compile, deterministic,
    and decoder/tiny_decoder when the tiny decoder is used."""
    device = resolve_device(load["device"])
    dtype = resolve_dtype(load["dtype"], device)
    pipe = load_pipeline(
        load["source"],
        load.get("snapshot") or load.get("revision"),  # the commit the job resolved a hub id to (client.full_load)
        device,
        dtype,
        load.get("compile", False),
        load.get("deterministic", False),
        load.get("vae_dtype", "auto"),
        load.get("decoder", "vae"),
        load.get("tiny_decoder"),
        load.get("tiny_decoder_snapshot"),
        load.get("check_memory", True),
    )
    return pipe, device, dtype


SMALL_DENOISER_PARAMS = 100_000_000


def set_cpu_threads(pipe, device: str) -> int | None:
    """Intra-op threads for sampling on the CPU; None on other devices (left as they are).

    A small denoiser (the tiny and fitted demo models) runs on one thread: its ops are too small for intra-op
    parallelism to pay, and torch's worker threads spin at every op's barrier, so whenever another process takes
    a core (Snakemake, the next job's client) each op stalls: measured on 2 cores under load, 10 ms a class on
    one thread, 300 ms on two. A large one (SDXL: 2.6 B parameters) uses every core the process may run on.
    """
    if device != "cpu":
        return None
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    n_params = sum(p.numel() for p in denoiser.parameters()) if denoiser is not None else 0
    threads = 1 if n_params < SMALL_DENOISER_PARAMS else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    return threads


def configure_vae(pipe, mode: str = "auto") -> None:
    """Set the dtype the VAE decodes in.

    auto: diffusers' behaviour. SDXL's VAE config says force_upcast, so an fp16 pipeline casts the VAE to fp32
    for every decode and back (fp16 activations of the stock SDXL VAE overflow to NaN).
    float32: the same pixels as auto, the VAE kept in fp32 (no cast per call).
    bfloat16: fp32's exponent range (no overflow) at tensor-core speed; pixels differ slightly from fp32.
    float16: no upcast; only for fp16-safe VAE weights (e.g. an "fp16-fix" VAE). NaN images are still caught.
    """
    if mode == "auto" or getattr(pipe, "vae", None) is None:
        return
    if mode not in VAE_DTYPES:
        raise ValueError(f"vae_dtype {mode!r}: expected one of {VAE_DTYPES}")
    vae = pipe.vae
    vae.to(getattr(torch, mode))
    vae.register_to_config(force_upcast=False)
    decode = vae.decode

    def decode_in_vae_dtype(z, *args, **kwargs):  # the pipeline passes latents in the UNet's dtype
        return decode(z.to(vae.dtype), *args, **kwargs)

    vae.decode = decode_in_vae_dtype


def local_sha256(source: str | None, planned: str | None) -> str | None:
    """What identifies a local model directory's weights: the content hash the plan put in the load spec (the
    job's params), or, for a directory the workflow built (the demo models, not hashed by the plan), the hash of
    its files now (model_files.content_sha256: small files, once per load). None for a hub id."""
    if planned or not source or not Path(source).is_dir():
        return planned
    from ..model_files import content_sha256

    return content_sha256(Path(source))


def environment(load: dict, device: str, dtype: torch.dtype, pipe=None, cpu_threads: int | None = None) -> dict:
    """What a class's images were made with (recorded in records.json and the provenance)."""
    import diffusers
    import transformers

    env = {
        "model_source": load["source"],
        "model_revision": load.get("revision"),
        "model_snapshot": load.get("snapshot"),  # the hub cache's commit it was loaded from (None: a local dir)
        "model_sha256": local_sha256(load["source"], load.get("sha256")),  # a local directory's files (None: hub)
        "device": device,
        "dtype": str(dtype),
        "vae_dtype": load.get("vae_dtype", "auto"),
        "decoder": load.get("decoder", "vae"),
        "tiny_decoder": load.get("tiny_decoder"),
        "tiny_decoder_snapshot": load.get("tiny_decoder_snapshot"),
        "tiny_decoder_sha256": local_sha256(load.get("tiny_decoder"), load.get("tiny_decoder_sha256")),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }
    if pipe is not None:
        env.update({"family": family_of(pipe).name, "pipeline": type(pipe).__name__})
    if cpu_threads is not None:
        env["cpu_threads"] = cpu_threads
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env
