"""Plan-time checks of a pipeline's weight files, without torch: each file's header is opened (a truncated copy or
an interrupted download is caught before any job), and the files are chosen as diffusers chooses them.

diffusers' variant rules (DiffusionPipeline.from_pretrained): a component's weights are `<name>.<ext>` (sharded:
`<name>-00001-of-00003.<ext>` with `<name>.<ext>.index.json`), a variant's are `<name>.<variant>.<ext>` (sharded:
`<name>.<variant>-00001-of-00003.<ext>`, `<name>.<ext>.index.<variant>.json`). Without a variant asked for, only the
plain files load: weights present only as `*.fp16.safetensors` fail. With a variant asked for, its files load,
and a component without them falls back to its plain files.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

WEIGHT_EXTS = (".safetensors", ".bin")
SHARD = re.compile(r"-\d{5}-of-\d{5}$")
MAX_HEADER = 100 * 1024 * 1024  # safetensors refuses headers above 100 MB
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
DTYPE_BYTES.update({"U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1})


def variant_of(name: str) -> str | None:
    """The variant a weight file (or shard index) belongs to: 'fp16' for diffusion_pytorch_model.fp16.safetensors,
    None for the plain diffusion_pytorch_model.safetensors."""
    if name.endswith(".json"):  # <name>.<ext>.index[.<variant>].json
        parts = name[: -len(".json")].split(".index")
        return parts[-1].lstrip(".") or None if len(parts) > 1 else None
    stem = name.rsplit(".", 1)[0]
    stem = SHARD.sub("", stem)
    return stem.split(".", 1)[1] if "." in stem else None


def weight_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.name.endswith(WEIGHT_EXTS)) if folder.is_dir() else []


class HeaderError(ValueError):
    """A .safetensors file whose header cannot be read; str() says why."""


def read_safetensors_header(path: Path) -> tuple[dict, int, int]:
    """(header, header length, file size) of a .safetensors file, reading only its first bytes; HeaderError
    when the header cannot be read (too short, a length beyond the file, not a JSON object)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise HeaderError(f"{size} bytes, shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER, size - 8):
                raise HeaderError(
                    f"its header claims {n:,} bytes but the file has {size:,}: truncated or not safetensors"
                )
            header = json.loads(f.read(n))
    except OSError as e:
        raise HeaderError(f"cannot be read ({e.strerror or e})") from None
    except HeaderError:
        raise
    except ValueError as e:  # JSON, UTF-8
        raise HeaderError(f"its header is not valid JSON ({e}): corrupt") from None
    if not isinstance(header, dict):
        raise HeaderError("its header is not a JSON object: corrupt")
    return header, n, size


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file cannot be loaded, from its header alone (None if it looks whole): the 8-byte
    header length, the JSON header, and the file size the tensors' offsets imply."""
    try:
        header, n, size = read_safetensors_header(path)
    except HeaderError as e:
        return str(e)
    end = 0
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            count = 1
            for d in info["shape"]:
                count *= int(d)
            width = DTYPE_BYTES.get(info["dtype"])
        except (TypeError, KeyError, ValueError):
            return f"tensor {name!r} has no valid dtype, shape and data_offsets in its header: corrupt"
        if not (isinstance(begin, int) and isinstance(stop, int) and 0 <= begin <= stop):
            return f"tensor {name!r} has data_offsets {info['data_offsets']}: corrupt"
        if width is not None and stop - begin != count * width:
            need = count * width
            return f"tensor {name!r} spans {stop - begin} bytes, but {info['dtype']} x {info['shape']} needs {need}"
        end = max(end, stop)
        spans.append((begin, stop, name))
    # safetensors reads the tensors in the order of their offsets, each starting where the previous one ends
    at, previous = 0, None
    for begin, stop, name in sorted(spans):
        if begin != at:
            where = (
                f"overlaps tensor {previous!r} (which ends at {at})"
                if begin < at
                else f"leaves bytes {at}-{begin} unused"
            )
            return f"tensor {name!r} has data_offsets [{begin}, {stop}], which {where}: corrupt"
        at, previous = stop, name
    if size != 8 + n + end:
        return (
            f"its header places {end:,} bytes of tensors after an {n:,}-byte header ({8 + n + end:,} bytes in all), "
            f"but the file has {size:,}: {'truncated' if size < 8 + n + end else 'has trailing bytes'}"
        )
    return None


def bin_problem(path: Path) -> str | None:
    """Why a .bin (torch.save) file cannot be loaded, if that shows without reading it: a zip archive (torch's
    format since 1.6) whose central directory, at its end, is missing was cut short. Older pickles: not checked."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                return None
        with zipfile.ZipFile(path):
            return None
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    except zipfile.BadZipFile as e:
        return f"is a cut-short archive ({e}): truncated"


def file_problem(path: Path) -> str | None:
    return safetensors_problem(path) if path.name.endswith(".safetensors") else bin_problem(path)


def _by_variant(folder: Path) -> dict:
    files = weight_files(folder)
    indexes = sorted(folder.glob("*.index*.json")) if folder.is_dir() else []
    by_variant: dict = {}
    for f in files + indexes:
        by_variant.setdefault(variant_of(f.name), []).append(f)
    return by_variant


def _chosen(by_variant: dict, variant: str | None) -> list[Path]:
    """The files diffusers loads for `variant`: its own, else (a component without them) the plain ones."""
    chosen = by_variant.get(variant) if variant else None
    if not chosen or not any(f.name.endswith(WEIGHT_EXTS) for f in chosen):
        chosen = by_variant.get(None, [])  # diffusers falls back to the plain files
    return chosen


def chosen_weight_files(folder: Path, variant: str | None = None) -> list[Path]:
    """The weight files (shards included, no index) diffusers would load from a component's folder."""
    return [f for f in _chosen(_by_variant(folder), variant) if f.name.endswith(WEIGHT_EXTS)]


def component_problems(folder: Path, label: str, variants: set, no_variant_why: str = "") -> list[str]:
    """What keeps a component's weights in `folder` from loading, for each variant the load may ask for (None:
    none asked for): missing files, shards its index names that are absent, and files whose headers say they
    are truncated or corrupt. Each problem names the file; `no_variant_why` says why no variant is asked for."""
    files = weight_files(folder)
    by_variant = _by_variant(folder)
    problems = []
    used: list[Path] = []
    for variant in sorted(variants, key=str):
        chosen = _chosen(by_variant, variant)
        if not any(f.name.endswith(WEIGHT_EXTS) for f in chosen):
            others = sorted({v for v in by_variant if v})
            if others and variant is None:
                shown = ", ".join(f"{label}/{f.name}" for f in files[:2])
                problems.append(
                    f"{label}/ has weights only as the {'/'.join(others)} variant ({shown}), which diffusers loads "
                    f"only when that variant is asked for, and {no_variant_why}"
                )
            elif not files:
                problems.append(f"{label}/ (no *.safetensors or *.bin weights)")
            continue
        used += chosen
    for f in sorted(set(used)):
        if f.name.endswith(".json"):
            try:
                shards = set(json.loads(f.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                problems.append(f"{label}/{f.name} (unreadable shard index)")
                continue
            problems += [f"{label}/{s} (a shard {f.name} names)" for s in sorted(shards) if not (folder / s).is_file()]
        elif why := file_problem(f):
            problems.append(f"{label}/{f.name} {why}")
    return problems


# Components of a diffusers pipeline that have no weights of their own.
WEIGHTLESS = ("Scheduler", "Tokenizer", "TokenizerFast", "ImageProcessor", "FeatureExtractor", "Processor")


def pipeline_problems(root: Path, variants: set, no_variant_why: str = "") -> list[str]:
    """component_problems of every weighted component that root/model_index.json lists (OSError or ValueError
    when model_index.json cannot be read)."""
    index = json.loads((Path(root) / "model_index.json").read_text())
    problems = []
    for name, spec in sorted(index.items()):
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[1] is None:
            continue
        if spec[1].endswith(WEIGHTLESS):
            continue
        problems += component_problems(Path(root) / name, name, set(variants), no_variant_why)
    return problems
