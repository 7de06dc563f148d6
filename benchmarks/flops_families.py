#!/usr/bin/env python
"""FLOPs per image of every supported generator family x decoder x resolution, on the meta device.

Every family with an example config (configs/models/<stem>.yaml, its `example_config`) is measured with that
config's checkpoint, steps, guidance, resolution and tiny decoder. Its full-size architecture is built on
PyTorch's meta device (no weights, no memory, no GPU) from the component configs in benchmarks/model_configs/<stem>/
(see the README there: which files are the checkpoints' own and which were written from published
hyperparameters), as the real pipeline class, and the family's adapter (gendistill.families) counts the FLOPs of
one call of each component with FlopCounterMode (2 per multiply-add; attention through the math SDPA backend).
Per image:

    denoiser evaluations = steps x (2 when classifier-free guidance is on, guidance > 1; FLUX and SANA-Sprint
                           embed guidance instead)
    total = evaluations x denoiser FLOPs + decoder FLOPs

The text encoders run once per class (the prompt is encoded once), so they are listed apart, per class.

    .venv/bin/python benchmarks/flops_families.py                 # the table in BENCHMARKS.md
    .venv/bin/python benchmarks/flops_families.py --families sdxl,flux --resolutions 512
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from _common import REPO, fmt_table

CONFIGS = REPO / "benchmarks" / "model_configs"
H100_TFLOPS = 989.4  # dense fp16/bf16 peak of an H100 SXM (gpu_measure.py)

EXAMPLES = REPO / "configs" / "models"
SIZES = (1024, 512, 256)  # each family at its example's resolution and the smaller of these


def example_rows() -> dict[str, tuple]:
    """family: (architecture config dir, checkpoint it stands for, steps, guidance, resolutions, tiny decoder
    config dir or None), from each family's example config (configs/models/<stem>.yaml, its `example_config`) and
    that checkpoint's architecture configs (benchmarks/model_configs/<stem>/)."""
    import yaml

    from gendistill.families import FAMILIES

    rows = {}
    for family in FAMILIES:
        if family.example_config is None:
            continue
        cfg = yaml.safe_load((EXAMPLES / f"{family.example_config}.yaml").read_text())
        g = cfg["generation"]
        native = g["resolution"]
        sizes = (native,) if family.native_resolution_only else (native, *(r for r in SIZES if r < native))
        tiny = g["tiny_decoder"].split("/")[-1] if g.get("tiny_decoder") else None
        rows[family.name] = (
            family.example_config,
            cfg["model"]["source"],
            g["steps"],
            float(g["guidance_scale"]),
            sizes,
            tiny,
        )
    return rows


def meta_pipeline(config_dir: Path):
    """The pipeline class of config_dir/model_index.json with every model component built on the meta device
    from its config.json; tokenizers are left out (FLOPs are counted on token ids of the pipelines' lengths)."""
    import diffusers
    import torch
    import transformers

    index = json.loads((config_dir / "model_index.json").read_text())
    kwargs = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list):
            if not name.startswith("_"):
                kwargs[name] = spec
            continue
        library, cls_name = spec
        folder = config_dir / name
        if library is None or "Tokenizer" in cls_name or not folder.is_dir():
            kwargs[name] = None
        elif "Scheduler" in cls_name:
            cls = getattr(diffusers, cls_name)
            kwargs[name] = cls.from_config(cls.load_config(folder))
        elif library == "diffusers":
            cls = getattr(diffusers, cls_name)
            with torch.device("meta"):
                kwargs[name] = cls.from_config(cls.load_config(folder))
        else:
            cls = getattr(transformers, cls_name)
            config = cls.config_class.from_pretrained(folder)
            with torch.device("meta"):
                kwargs[name] = cls(config)
    pipe_cls = getattr(diffusers, index["_class_name"])
    return pipe_cls(**kwargs)


def tiny_decoder(name: str):
    import diffusers
    import torch

    with torch.device("meta"):
        return diffusers.AutoencoderTiny.from_config(diffusers.AutoencoderTiny.load_config(CONFIGS / name))


def dense_text_masks() -> None:
    """transformers decides whether to build an attention mask by reading the padding mask's values, which meta
    tensors do not have. Tell it the mask is all ones: dense attention costs the same FLOPs either way (masked
    positions are computed, then ignored)."""
    from transformers import masking_utils

    masking_utils._ignore_bidirectional_mask_sdpa = lambda *args, **kwargs: True
    masking_utils._ignore_causal_mask_sdpa = lambda *args, **kwargs: True


def family_rows(family: str, resolutions: list[int] | None) -> list[dict]:
    from gendistill.families import adapter_for

    dense_text_masks()

    folder, model, steps, guidance, native, tiny = example_rows()[family]
    pipe = meta_pipeline(CONFIGS / folder)
    adapter = adapter_for(pipe, device="meta")
    text = adapter.text_flops()
    vae = pipe.vae
    tae = tiny_decoder(tiny) if tiny else None
    rows = []
    for res in resolutions or native:
        if family == "dit" and res not in native:
            continue  # a DiT generates at its native resolution only
        pipe.vae = vae
        f = adapter.flops(res, steps, guidance)
        row = {
            "family": family,
            "model": model,
            "px": res,
            "steps": steps,
            "guidance": guidance,
            "evals": f["evals_per_image"],
            "text": text,
            "denoiser": f["denoiser_per_eval"],
            "vae": f["decoder"],
            "total_vae": f["per_image"],
            "tiny": None,
            "total_tiny": None,
        }
        if tae is not None:
            pipe.vae = tae
            t = adapter.flops(res, steps, guidance)
            row.update(tiny=t["decoder"], total_tiny=t["per_image"])
        rows.append(row)
    pipe.vae = vae
    return rows


def main(argv=None) -> int:
    rows_of = example_rows()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(rows_of), help=f"comma list of {', '.join(rows_of)}")
    ap.add_argument("--resolutions", default=None, help="comma list (default: each family's, see example_rows)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    res = [int(r) for r in a.resolutions.split(",")] if a.resolutions else None
    rows = [r for fam in a.families.split(",") for r in family_rows(fam.strip(), res)]

    def g(v):
        return "-" if v is None else f"{v / 1e9:.1f}"

    def ms(v):
        return "-" if v is None else f"{v / (H100_TFLOPS * 1e12) * 1e3:.2f}"

    table = [
        [
            r["family"],
            r["px"],
            f"{r['steps']} x{2 if r['evals'] > r['steps'] else 1}",
            g(r["text"]),
            g(r["denoiser"]),
            g(r["vae"]),
            g(r["tiny"]),
            g(r["total_vae"]),
            g(r["total_tiny"]),
            ms(r["total_vae"]),
            ms(r["total_tiny"]),
        ]
        for r in rows
    ]
    print(
        "FLOPs per image, full-size architectures built on the meta device from benchmarks/model_configs/ "
        "(GFLOP; text once per class; total = evaluations x denoiser + decode)"
    )
    print(
        fmt_table(
            [
                "family",
                "px",
                "steps x cfg",
                "text/class",
                "denoiser/eval",
                "VAE decode",
                "tiny decode",
                "total, VAE",
                "total, tiny",
                f"ms/img VAE @{H100_TFLOPS:g}",
                "ms/img tiny",
            ],
            table,
        )
    )
    print("models: " + "; ".join(f"{f}: {rows_of[f][1]}" for f in dict.fromkeys(r["family"] for r in rows)))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
