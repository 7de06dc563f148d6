"""A diffusers model directory with RANDOM weights, built from a checkpoint's component configs (no download).

For measuring speed and memory without the real weights: the workflow loads the directory exactly as it loads
the checkpoint (`model.source: <dir>`), with the same architecture, compute and memory per image; its images
are noise. `benchmarks/model_configs/` holds the configs of every supported family (its README says which are
the checkpoints' own files).

    build_random_model_dir("benchmarks/model_configs/sd-turbo", "models/sd-turbo-random", "float16")

* Memory: one component at a time, created directly in the target dtype (never a float32 copy first) and written
  before the next is built, so the peak is about the largest component in that dtype.
* Seeded: each component's weights come from (seed, its position in model_index.json).
* Cached: a directory already built from the same configs, dtype and seed is reused; anything else is rebuilt. It
  is written under a temporary name and renamed when complete (an interrupted build leaves nothing that looks
  done), with RANDOM_WEIGHTS.txt saying what it is and build.json what made it.
* Tokenizers are the project's offline character-level ones (gendistill.families.tokenizers) read by the
  checkpoint's tokenizer classes, at the real maximum lengths (CLIP 77, T5 512; the T5 and Gemma pipelines pass
  their own sequence length); their vocabularies are small (the text encoders keep the real vocabulary size, so
  their cost is the real one).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from ..atomic import atomic_path
from ..families.tokenizers import clip_char_vocab, write_gemma_tokenizer, write_t5_tokenizer, write_tokenizer_files

BUILD_RECORD = "build.json"
DTYPES = ("float16", "bfloat16", "float32")
# the real tokenizers' maximum lengths (CLIP's decides the sequence; the T5 and Gemma pipelines pass their own
# max_sequence_length, and Gemma's is left as written)
MAX_LENGTH = {"clip": 77, "t5": 512}


def configs_hash(config_dir: Path) -> str:
    """sha256 over the config files (names and bytes): what the architecture is."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(config_dir).rglob("*.json") if p.is_file()):
        h.update(str(f.relative_to(config_dir)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def components(config_dir: Path) -> dict[str, tuple[str, str]]:
    """{component: (library, class name)} of model_index.json (entries of null, like a safety checker, left out);
    a folder of one model (config.json naming its class, e.g. a tiny decoder) is the component "."."""
    config_dir = Path(config_dir)
    if not (config_dir / "model_index.json").is_file():
        return {".": ("diffusers", json.loads((config_dir / "config.json").read_text())["_class_name"])}
    index = json.loads((config_dir / "model_index.json").read_text())
    return {k: tuple(v) for k, v in index.items() if isinstance(v, list) and v[0] is not None}


def build_random_model_dir(
    config_dir: str | Path, out: str | Path, dtype: str = "float16", seed: int = 0, device: str = "cpu", log=print
) -> dict:
    """Write (or reuse) the random-weight directory of `config_dir` at `out`; returns its build record (seconds,
    parameters per component, size). `device`: where the weights are drawn (a GPU draws billions in a second; the
    CPU and a GPU draw different numbers from one seed). `log` gets one line per component."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {DTYPES}")
    config_dir, out = Path(config_dir), Path(out)
    want = {"configs": str(config_dir.resolve()), "configs_sha256": configs_hash(config_dir), "dtype": dtype}
    want.update(seed=seed, device=device)
    record_path = out / BUILD_RECORD
    if record_path.is_file():
        have = json.loads(record_path.read_text())
        if all(have.get(k) == v for k, v in want.items() if k != "configs"):
            return {**have, "reused": True}
        shutil.rmtree(out)  # another architecture, dtype or seed: rebuilt
    single = not (config_dir / "model_index.json").is_file()
    index = {} if single else json.loads((config_dir / "model_index.json").read_text())
    t0 = time.perf_counter()
    params, seconds = {}, {}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        for position, (name, (library, cls_name)) in enumerate(components(config_dir).items()):
            t = time.perf_counter()
            folder = tmp / name
            if "Tokenizer" in cls_name:
                _write_tokenizer(folder, cls_name)
            elif "Scheduler" in cls_name:
                shutil.copytree(config_dir / name, folder)
            else:
                torch.manual_seed(seed * 1000 + position)
                model = _random_model(library, cls_name, config_dir / name, getattr(torch, dtype), device)
                params[name] = sum(p.numel() for p in model.parameters())
                model.to("cpu").save_pretrained(folder, safe_serialization=True)  # written from host memory
                del model
                if device == "cuda":
                    torch.cuda.empty_cache()
            seconds[name] = round(time.perf_counter() - t, 2)
            log(f"  {name}: {cls_name}" + (f", {params[name] / 1e6:.1f} M parameters" if name in params else ""))
        if index.get("_class_name") == "DiTPipeline" and "id2label" not in index:
            # a class-conditional DiT is prompted by its labels: the real checkpoint's are ImageNet's
            n = json.loads((config_dir / "transformer" / "config.json").read_text())["num_embeds_ada_norm"]
            index["id2label"] = {str(i): f"class {i}" for i in range(n)}
        if not single:
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        record = {
            **want,
            "seconds": round(time.perf_counter() - t0, 2),
            "component_seconds": seconds,
            "parameters": params,
            "bytes": size,
        }
        (tmp / "RANDOM_WEIGHTS.txt").write_text(
            f"This pipeline has RANDOM weights: the architecture of {config_dir} (its component configs), built by\n"
            f"gendistill.generator.random_dir ({dtype}, seed {seed}). Same compute and memory per image as the real\n"
            f"checkpoint; its images are noise.\n"
        )
        (tmp / BUILD_RECORD).write_text(json.dumps(record, indent=1))
    return {**record, "reused": False}


def _random_model(library: str, cls_name: str, folder: Path, dtype, device: str):
    """One model component from its config, with random weights created in `dtype` on `device`."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # parameters are created in the target dtype: no float32 copy first
    try:
        with torch.device(device):
            model = _construct(library, cls_name, folder, dtype)
        tensors = [*model.parameters(), *model.buffers()]
        if any(t.is_floating_point() and t.dtype != dtype for t in tensors):  # made in float32 by its module
            model.to(dtype)  # (SD3's position table; a no-op cast is skipped: diffusers warns at every .to)
        return model.eval()
    finally:
        torch.set_default_dtype(previous)


def _construct(library: str, cls_name: str, folder: Path, dtype):
    if library == "diffusers":
        import diffusers

        cls = getattr(diffusers, cls_name)
        return cls.from_config(cls.load_config(folder))
    import transformers

    cls = getattr(transformers, cls_name)
    config = cls.config_class.from_pretrained(folder)
    config.dtype = dtype  # transformers builds submodules in the config's dtype (the checkpoint's), not the default
    if cls_name.startswith("CLIPText"):  # the ids of the tokenizer written beside it mark begin and end
        vocab = clip_char_vocab()
        config.bos_token_id, config.eos_token_id = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
        config.pad_token_id = config.eos_token_id
    return cls(config)


def _write_tokenizer(folder: Path, cls_name: str) -> None:
    if cls_name.startswith("CLIP"):
        write_tokenizer_files(folder, MAX_LENGTH["clip"])
        return
    kind = "t5" if cls_name.startswith("T5") else "gemma" if cls_name.startswith("Gemma") else None
    if kind is None:
        raise ValueError(f"tokenizer class {cls_name}: no offline tokenizer for it (CLIP, T5 and Gemma are supported)")
    (write_t5_tokenizer if kind == "t5" else write_gemma_tokenizer)(folder)
    if kind not in MAX_LENGTH:
        return
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_max_length"] = MAX_LENGTH[kind]
    cfg_path.write_text(json.dumps(cfg, indent=1))
