"""Validate a workflow config: JSON schema (types, ranges, unknown keys, defaults) plus semantic checks.

Every problem becomes one line naming the key and the fix, and all are reported together, before any job runs.
"""

from __future__ import annotations

import copy
import difflib
import json
from importlib.resources import files
from pathlib import Path

import jsonschema
import yaml

# Why float16 is refused for sampling on a CPU (the config's check and the plan's, plan.sampling_problems_here).
CPU_FLOAT16 = (
    "generation.dtype: float16 on the CPU: torch has no float16 matrix kernels on most CPUs (measured on a 2-core "
    "AMD EPYC: a 2048 x 2048 matrix product took 93 s in float16, 0.15 s in bfloat16, 0.31 s in float32), so a "
    "full-size model would take hours per image"
)


# Package data, so an installed (non-editable) package finds it; the one copy (the workflow validates through
# build_plan -> load_and_validate).
SCHEMA = files("gendistill") / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config is invalid; str(err) lists every problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _fill_defaults(instance, schema):
    """Insert schema defaults into `instance` (recursively for objects), like Snakemake's set_default=True."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)


def _path(err) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "(top level)"


_TYPE_NAMES = {"array": "a list", "object": "a mapping", "integer": "an integer", "number": "a number"}
_TYPE_NAMES.update(string="a string", boolean="true or false", null="null")


def _type_name(value) -> str:
    for name, kinds in (("boolean", bool), ("integer", int), ("number", float), ("string", str)):
        if isinstance(value, kinds):
            return _TYPE_NAMES[name]
    return _TYPE_NAMES["array" if isinstance(value, list) else "object" if isinstance(value, dict) else "null"]


def _takes(schema: dict) -> str:
    """What a schema accepts, in words: 'a list or null'."""
    kinds = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
    return " or ".join(_TYPE_NAMES.get(k, str(k)) for k in kinds if k)


def _example(schema: dict):
    """A value of the right type for `schema`: its `examples` or its default when it has them, else one built from
    its type."""
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("default") is not None:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kinds = [k for k in (schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]) if k]
    kind = next((k for k in kinds if k != "null"), "null")
    if kind == "array":
        item = schema.get("items", {})
        return [_example(item)] if item else []
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if kind == "integer" else 0.5))
    return {"string": "...", "boolean": True, "object": {}}.get(kind)


def _yaml(key: str, value) -> str:
    """`key: value` as a line of YAML (flow style), how the fix is written in a config file."""
    return f"{key}: {yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix('...').strip()}"


def _schema_messages(err) -> list[str]:
    """One line per problem of a schema error, each naming the key and the fix: a misspelt key with the likely one,
    a wrong type with an example of the right one, a value outside its choices with the closest."""
    where = _path(err)
    leaf = str(err.absolute_path[-1]) if err.absolute_path else where
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        lines = []
        for key in unknown:
            at = f"{where}.{key}" if err.absolute_path else key
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close:
                lines.append(f"{at}: unknown key; did you mean {close[0]}? Fix: rename it to {close[0]}.")
            else:
                hint = f" Keys allowed here: {', '.join(allowed)}." if allowed else ""
                lines.append(f"{at}: unknown key.{hint} Fix: remove or rename it (check for a typo).")
        return lines or [f"{where}: {err.message}. Fix: remove or rename the key (check for a typo)."]
    desc = " ".join(err.schema.get("description", "").split())
    about = f" ({desc})" if desc else ""
    if err.validator in ("type", "oneOf", "anyOf"):
        options = err.schema.get("oneOf") or err.schema.get("anyOf") or [err.schema]
        takes = " or ".join(dict.fromkeys(_takes(o) for o in options))
        own = err.schema.get("default") is not None or "examples" in err.schema
        example = _example(err.schema if own else options[-1])
        return [
            f"{where}: {json.dumps(err.instance)} is {_type_name(err.instance)}; this key takes {takes}. "
            f"Fix: e.g. `{_yaml(leaf, example)}`."
        ]
    if err.validator == "enum":
        close = difflib.get_close_matches(str(err.instance), [str(v) for v in err.validator_value], n=1)
        mean = f" Did you mean {close[0]}?" if close else ""
        choices = ", ".join(map(str, err.validator_value))
        return [f"{where}: {json.dumps(err.instance)} is not one of {choices}.{mean}{about}"]
    return [f"{where}: {err.message}{about}"]


def validate_schema(config: dict) -> dict:
    """Return a copy of `config` with defaults filled in; raise ConfigError listing all schema violations."""
    schema = load_schema()
    cfg = copy.deepcopy(config or {})
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError([line for e in errors for line in _schema_messages(e)])
    _fill_defaults(cfg, schema)
    # an object-or-null key set to an object gets its keys' defaults too (only this one: model.tiny and
    # model.fitted keep their specs as written, which their models' directory names hash)
    rg = cfg["generation"].get("real_guidance")
    if isinstance(rg, dict):
        props = schema["properties"]["generation"]["properties"]["real_guidance"]["properties"]
        cfg["generation"]["real_guidance"] = {k: rg.get(k, p["default"]) for k, p in props.items()}
    return cfg


def nominal_ipc(cfg: dict) -> int:
    """Images per class of the packaged set, generation.n_generated x (1 + augmentation.n_aug) (the run's IPC; a
    class's prompts.overrides count aside: gendistill.plan.Plan.images_per_class)."""
    return cfg["generation"]["n_generated"] * (1 + cfg["augmentation"]["n_aug"])


def semantic_problems(cfg: dict) -> list[str]:
    """Checks a schema cannot express (cross-key consistency). Dataset/model presence is checked elsewhere."""
    problems = []
    gen, aug = cfg["generation"], cfg["augmentation"]
    if cfg.get("ipc") is not None:
        made = nominal_ipc(cfg)
        if made != cfg["ipc"]:
            problems.append(
                f"ipc: {cfg['ipc']} but generation.n_generated x (1 + augmentation.n_aug) = "
                f"{gen['n_generated']} x {1 + aug['n_aug']} = {made}. Fix: set ipc: {made}, or change "
                f"n_generated/n_aug so their product is {cfg['ipc']} (e.g. IPC 20 = 4 x (1 + 4))."
            )
    lo, hi = aug["crop_scale"]
    if lo > hi:
        problems.append(f"augmentation.crop_scale: [{lo}, {hi}] is not [low, high]. Fix: swap the two values.")
    glo, ghi = aug["gamma"]
    if glo > ghi:
        problems.append(f"augmentation.gamma: [{glo}, {ghi}] is not [low, high]. Fix: swap the two values.")
    if gen["device"] == "cpu" and gen["dtype"] == "float16":
        problems.append(
            f"{CPU_FLOAT16}. Fix: generation.dtype: bfloat16 (the same memory as float16), or auto (float32 on "
            f"the CPU), or device: cuda."
        )
    if gen["device"] == "cpu" and gen["vae_dtype"] == "float16":
        problems.append(
            "generation.vae_dtype: float16 on the CPU is not supported by torch for these models. "
            "Fix: vae_dtype: auto, or device: cuda."
        )
    rec_path = cfg.get("time_budget_record")
    if rec_path:
        rec = read_time_budget_record(rec_path)
        if rec is None:
            problems.append(
                f"time_budget_record: {rec_path} is not a readable record of `gendistill "
                f"time-budget`. Fix: run it with --json {rec_path}, or set the key to null."
            )
        elif rec["recommendation"]["n_generated"] != gen["n_generated"]:
            problems.append(
                f"time_budget_record: the measured budget allows n_generated = "
                f"{rec['recommendation']['n_generated']} but generation.n_generated = "
                f"{gen['n_generated']}. Fix: set generation.n_generated: "
                f"{rec['recommendation']['n_generated']} (and ipc accordingly)."
            )
        elif (planned := (rec.get("model") or {}).get("oversample", 1)) != cfg["selection"]["oversample"]:
            problems.append(
                f"time_budget_record: the budget was planned for selection.oversample {planned} "
                f"(candidates sampled per kept image) but the config has "
                f"{cfg['selection']['oversample']}, so sampling would take another time. Fix: rerun "
                f"`gendistill time-budget --configfile <this config> ...` or set selection.oversample: {planned}."
            )
    for key in ("results_dir", "run"):  # every output path starts with <results_dir>/<run>/
        if "{" in cfg[key] or "}" in cfg[key]:
            problems.append(
                f"{key}: {cfg[key]!r} contains a brace; every output path of the run starts with it, and "
                f"Snakemake reads braces in a path as a wildcard. Fix: a {key} without {{ or }}."
            )
    if len(set(cfg["evaluation"]["seeds"])) != len(cfg["evaluation"]["seeds"]):
        problems.append("evaluation.seeds: a seed is listed twice. Fix: list each training seed once.")
    return problems


def read_time_budget_record(path: str) -> dict | None:
    try:
        rec = json.loads(Path(path).read_text())
        return rec if rec.get("kind") == "gendistill.time_budget" else None
    except (OSError, ValueError):
        return None


def merge_config(base: dict, update: dict) -> dict:
    """`base` updated by `update` as Snakemake merges its config files: nested mappings key by key, anything else
    replaced (a null replaces a mapping)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config_files(paths: list[str | Path], overrides: list[str] = ()) -> dict:
    """The config a workflow run gets from `--configfile paths...`: each file updates the ones before it, then
    each `KEY=VALUE` override (a dotted key, a YAML value) sets one key. Not yet validated (load_and_validate)."""
    cfg: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError([f"config file {path} does not exist. Fix: pass the run's config with --configfile."])
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"config file {path}: expected a mapping of keys, got {type(loaded).__name__}."])
        cfg = merge_config(cfg, loaded)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"override {item!r}: expected KEY=VALUE, e.g. generation.resolution=256."])
        nested = yaml.safe_load(value)
        for part in reversed(key.split(".")):
            nested = {part: nested}
        cfg = merge_config(cfg, nested)
    return cfg


def load_and_validate(config: dict) -> dict:
    cfg = validate_schema(config)
    problems = semantic_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
