"""How much memory a pipeline will take once loaded, estimated before it is loaded (no torch), and whether the
device has it: so that a model too large for the machine is refused with its figure and the fixes, instead of
the sampler being killed by the kernel's out-of-memory killer with no word.

The estimate, per component listed in model_index.json:

* weights: every floating-point tensor's element count (from the safetensors headers: dtype x shape, the file's
  first bytes only) in the dtype the pipeline is loaded in, integer tensors at their own size. A .bin file's
  elements are taken from its size (2 bytes each for a variant's file, else 4). The VAE counts in float32 when
  it decodes in float32 (an fp16 pipeline's force_upcast, or vae_dtype float32);
* activations of one pipeline call: the decoder's full-resolution feature maps (its first block's channels x
  pixels x DECODER_MAPS live maps) and the denoiser's tokens (width x DENOISER_MAPS maps, plus one attention
  score matrix per head), per image of the batch, twice for the denoiser under classifier-free guidance;
* the process itself (Python, torch, diffusers, transformers: FIXED_OVERHEAD) and the load's transient: the
  largest component's weight files stored in another dtype than the load's, which from_pretrained maps into
  memory while it copies their tensors into the load dtype (measured: the sampler's peak exceeds its resident
  memory after the load by about that file). Files already in the load dtype are used in place (their mapped
  pages are the weights: resident, but as page cache, not anonymous memory).

The constants were set from the full-size architectures measured on a CPU (BENCHMARKS.md, section 9: each
sampler's peak resident memory beside this estimate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .weights import DTYPE_BYTES, HeaderError, chosen_weight_files, read_safetensors_header

GIB = 2**30
DTYPE_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
DEFAULT_BATCH = {"cuda": 32, "cpu": 8}  # images per pipeline call of generation.batch_size: auto
DECODER_MAPS = 12  # live full-resolution feature maps of an autoencoder's decoder (norm, conv, residual, upsample)
DENOISER_MAPS = 30  # live token-width activations of a denoiser call
FIXED_OVERHEAD = int(1.0 * GIB)  # the sampler process before any weight: interpreter, torch, diffusers, transformers
# Components of a diffusers pipeline that have no weights of their own.
WEIGHTLESS = ("Scheduler", "Tokenizer", "TokenizerFast", "ImageProcessor", "FeatureExtractor", "Processor")


@dataclass
class MemoryEstimate:
    """The estimated resident memory of a loaded pipeline and one pipeline call, in bytes."""

    dtype: str
    batch: int
    resolution: int
    components: dict[str, int] = field(default_factory=dict)  # weights per component, in its load dtype
    activations: int = 0
    overhead: int = 0
    converted: int = 0  # of the overhead: the largest component's files stored in another dtype (the load's transient)

    @property
    def weights(self) -> int:
        return sum(self.components.values())

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.overhead

    def describe(self) -> str:
        """One line: the total, the weights per component, the activations and the process."""
        parts = ", ".join(f"{k} {v / GIB:.1f}" for k, v in sorted(self.components.items(), key=lambda kv: -kv[1]))
        return (
            f"{self.total / GIB:.1f} GiB in {self.dtype} (weights {self.weights / GIB:.1f} GiB: {parts}; "
            f"activations of a batch of {self.batch} at {self.resolution} px {self.activations / GIB:.1f}; "
            f"process and load {self.overhead / GIB:.1f})"
        )


SAFETENSORS_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def tensor_elements(path: Path) -> tuple[int, int, set]:
    """(floating-point elements, bytes of the other tensors, the float dtypes stored) of one weight file, from its
    header (safetensors) or its size (.bin: elements of 4 bytes, 2 for a variant's file; always converted)."""
    if path.name.endswith(".bin"):
        width = 2 if "." in path.name[: -len(".bin")] else 4
        return path.stat().st_size // width, 0, {"pickle"}
    header, _, _ = read_safetensors_header(path)
    floats = other = 0
    stored = set()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for d in info["shape"]:
            count *= int(d)
        if info["dtype"] in FLOAT_DTYPES:
            floats += count
            stored.add(info["dtype"])
        else:
            other += count * DTYPE_BYTES.get(info["dtype"], 8)
    return floats, other, stored


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_dtype(dtype: str, device: str) -> str:
    """generation.dtype as the sampler resolves it (sampling.pipeline.resolve_dtype): auto is float16 on a GPU,
    float32 on the CPU."""
    if dtype == "auto":
        return "float16" if device == "cuda" else "float32"
    return dtype


def vae_load_dtype(dtype: str, vae_dtype: str, vae_config: dict) -> str:
    """The dtype the VAE holds while it decodes: vae_dtype when set; an fp16 pipeline upcasts a force_upcast VAE."""
    if vae_dtype != "auto":
        return vae_dtype
    if dtype == "float16" and vae_config.get("force_upcast", False):
        return "float32"
    return dtype


TINY_DECODER_CHANNELS = 64  # every block of a TAESD-family AutoencoderTiny


def activation_bytes(root: Path, resolution: int, batch: int, dtype: str, guidance: float, decoder: str = "vae") -> int:
    """Activations of one pipeline call at `resolution` for `batch` images (module docstring)."""
    size = DTYPE_SIZE.get(dtype, 4)
    vae = _read(root / "vae" / "config.json")
    first = (vae.get("block_out_channels") or vae.get("decoder_block_out_channels") or [128])[0]
    if decoder == "tiny":
        first = TINY_DECODER_CHANNELS
    decoder = DECODER_MAPS * first * resolution**2 * size
    unet = _read(root / "unet" / "config.json")
    transformer = _read(root / "transformer" / "config.json")
    scale = 2 ** (len(vae.get("block_out_channels") or vae.get("encoder_block_out_channels") or [0] * 4) - 1)
    latent = (resolution // scale) ** 2
    if transformer:
        patch = transformer.get("patch_size") or 1
        tokens = latent // patch**2
        heads = transformer.get("num_attention_heads", 16)
        width = heads * transformer.get("attention_head_dim", 72)
        denoiser = (DENOISER_MAPS * tokens * width + heads * tokens**2) * size
    else:
        denoiser = DENOISER_MAPS * latent * (unet.get("block_out_channels") or [320])[0] * size
    passes = 2 if guidance > 1.0 else 1
    return batch * (decoder + passes * denoiser)


def estimate(
    root: Path,
    dtype: str,
    resolution: int,
    batch: int,
    guidance: float = 0.0,
    vae_dtype: str = "auto",
    variant: str | None = None,
    decoder: str = "vae",
) -> MemoryEstimate:
    """The memory of the pipeline at `root` (a diffusers directory) loaded in `dtype` (float32, float16,
    bfloat16: already resolved), sampling `batch` images at `resolution` (module docstring). Reads only the
    JSON files and the weight files' headers. HeaderError for an unreadable header."""
    root = Path(root)
    index = _read(root / "model_index.json")
    est = MemoryEstimate(dtype=dtype, batch=batch, resolution=resolution)
    largest_files = 0
    for name, spec in sorted(index.items()):
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[1] is None:
            continue
        if spec[1].endswith(WEIGHTLESS):
            continue
        held = vae_load_dtype(dtype, vae_dtype, _read(root / name / "config.json")) if name == "vae" else dtype
        nbytes = files = 0
        for f in chosen_weight_files(root / name, variant):
            floats, other, stored = tensor_elements(f)
            nbytes += floats * DTYPE_SIZE.get(held, 4) + other
            if stored - {SAFETENSORS_DTYPE.get(held)}:  # copied into the load dtype while the file is mapped
                files += f.stat().st_size
        est.components[name] = nbytes
        largest_files = max(largest_files, files)
    est.activations = activation_bytes(root, resolution, batch, dtype, guidance, decoder)
    est.overhead = FIXED_OVERHEAD + largest_files
    est.converted = largest_files
    return est


def stored_in_load_dtype(est: MemoryEstimate) -> MemoryEstimate:
    """`est` with the weights stored in the dtype they are loaded in: no file to convert while loading."""
    return replace(est, overhead=est.overhead - est.converted, converted=0)


def saved_in(dtype: str) -> str:
    """The fix that stores the weights in `dtype` once, so that loading them converts nothing."""
    return (
        f"the weights saved in {dtype} (once, where the memory is: DiffusionPipeline.from_pretrained(<dir>, "
        f"dtype=torch.{dtype}).save_pretrained(<new dir>), then model.source: <new dir>)"
    )


def available_bytes() -> tuple[int, str] | None:
    """(bytes, where from) this process may still use on the host: /proc/meminfo's MemAvailable (free memory
    plus what the kernel can reclaim), lowered by a cgroup limit (a SLURM job's or a container's) when one is
    set; None where neither can be read (not Linux)."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = (int(line.split()[1]) * 1024, "MemAvailable")
    except (OSError, ValueError, IndexError):
        pass
    limit = _cgroup_room()
    if limit is not None and (found is None or limit < found[0]):
        found = (limit, "the cgroup's memory.max less its memory.current")
    return found


def total_bytes() -> tuple[int, str] | None:
    """(bytes, where from) of memory this process could have with nothing else running: /proc/meminfo's MemTotal,
    lowered by a cgroup limit when one is set; None where neither can be read."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                found = (int(line.split()[1]) * 1024, "MemTotal")
    except (OSError, ValueError, IndexError):
        pass
    limit = _cgroup_room(used=False)
    if limit is not None and (found is None or limit < found[0]):
        found = (limit, "the cgroup's memory.max")
    return found


def _cgroup_room(used: bool = True) -> int | None:
    """memory.max - memory.current of this process's cgroup (v2; memory.max alone when not `used`), or None
    without a limit."""
    try:
        rel = next(
            line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines() if line[:3] == "0::"
        )
        base = Path("/sys/fs/cgroup") / rel.lstrip("/")
        raw = (base / "memory.max").read_text().strip()
        if raw == "max":
            return None
        return int(raw) - (int((base / "memory.current").read_text().strip()) if used else 0)
    except (OSError, ValueError, StopIteration):
        return None


def alternatives(est: MemoryEstimate, build) -> dict[str, MemoryEstimate]:
    """The settings that lower the estimate `est`, each with its own estimate; `build(dtype, batch, decoder)`
    estimates the same pipeline with other settings (None where the decoder cannot be the tiny one). Each targets
    a part of the estimate: the weights (bfloat16 for float32), the load's conversion of files stored in another
    dtype (the weights saved in the load dtype), the activations (batch size 1, the tiny decoder's smaller maps);
    then all of them together. Only those whose estimate is lower are kept: every fix offered follows the figure
    (bfloat16 from float32 files alone may need more than float32: the float32 file is read while converted)."""
    options: dict[str, tuple[MemoryEstimate, dict]] = {}
    if est.converted:
        options[saved_in(est.dtype)] = (stored_in_load_dtype(est), {"stored": True})
    if est.dtype == "float32":
        bf16 = build("bfloat16", est.batch, None)
        options["generation.dtype: bfloat16"] = (bf16, {"dtype": "bfloat16"})
        if bf16.converted:
            both = {"dtype": "bfloat16", "stored": True}
            options[f"generation.dtype: bfloat16 with {saved_in('bfloat16')}"] = (stored_in_load_dtype(bf16), both)
    if est.batch > 1:
        options["generation.batch_size: 1"] = (build(est.dtype, 1, None), {"batch": 1})
    if (tiny := build(est.dtype, est.batch, "tiny")) is not None:
        options["generation.decoder: tiny (with generation.tiny_decoder)"] = (tiny, {"decoder": "tiny"})
    kept = {what: option for what, option in options.items() if option[0].total < est.total - 0.05 * GIB}
    if len(kept) > 1:
        change: dict = {}
        for _, settings in kept.values():
            change.update(settings)
        least = build(change.get("dtype", est.dtype), change.get("batch", est.batch), change.get("decoder"))
        least = stored_in_load_dtype(least) if change.get("stored") else least
        if least.total < min(alt.total for alt, _ in kept.values()) - 0.05 * GIB:
            kept["all of these together"] = (least, change)
    return {what: alt for what, (alt, _) in kept.items()}


def fixes(est: MemoryEstimate, alternatives: dict[str, MemoryEstimate], have: int) -> str:
    """The fixes of a pipeline too large for the device that lower its memory, each with what it would need."""
    out = [
        f"{what} (about {alt.total / GIB:.1f} GiB{', fits' if alt.total <= have else ''})"
        for what, alt in alternatives.items()
        if alt.total < est.total - 0.05 * GIB
    ]
    out.append("a machine (or a SLURM job) with more memory")
    out.append("limits.check_memory: false to load it anyway (the kernel may kill the sampler)")
    return "; ".join(out)


def memory_problem(
    root: Path,
    label: str,
    gen: dict,
    device: str,
    available: tuple[int, str] | None,
    variant: str | None = None,
) -> str | None:
    """None when the pipeline at `root` fits in `available` (bytes, where from) on `device` (cpu, cuda); else
    the message: the estimate, what the device has, and the fixes with their figures. `gen`: the generation
    settings (dtype, vae_dtype, resolution, batch_size, guidance_scale, decoder)."""
    if available is None:
        return None
    dtype = load_dtype(gen["dtype"], device)
    batch = DEFAULT_BATCH[device] if gen.get("batch_size", "auto") == "auto" else int(gen["batch_size"])
    decoder = gen.get("decoder", "vae")
    settings = {"guidance": gen.get("guidance_scale", 0.0), "vae_dtype": gen.get("vae_dtype", "auto")}
    settings.update(variant=variant, decoder=decoder)
    res = gen["resolution"]
    try:
        est = estimate(root, dtype, res, batch, **settings)
    except (HeaderError, KeyError, TypeError, ValueError):
        return None  # the weight check names an unreadable file
    have, source = available
    if est.total <= have:
        return None

    def build(dtype_, batch_, decoder_):
        if decoder_ == "tiny" and (decoder == "tiny" or not (root / "vae").is_dir()):
            return None  # already the tiny decoder, or no VAE to replace
        return estimate(root, dtype_, res, batch_, **{**settings, "decoder": decoder_ or decoder})

    where = "GPU memory free" if device == "cuda" else f"host memory available ({source})"
    return (
        f"model.source: {label} needs about {est.describe()} on the {device.upper() if device == 'cuda' else 'CPU'}, "
        f"but this machine has {have / GIB:.1f} GiB of {where}: the sampler would be killed by the kernel (or run "
        f"out of memory) while loading or sampling. Fix: {fixes(est, alternatives(est, build), have)}."
    )
