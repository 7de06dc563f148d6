"""The generator families: one module of this package per diffusers pipeline family holds all that is particular
to it: its `Family` facts (pipeline classes, latents, patching, guidance, resolution, tiny decoder,
conditioning), its adapter (how the sampler encodes a prompt, generates a batch and counts FLOPs) and its
tiny random-weight pipeline (`build_tiny`, for the demo and the tests). The registries below are derived from
those modules, so adding a family is adding a module.

Importing this package (as the plan does, before any job) imports neither torch nor diffusers; adapters and
builders import them when they run.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Adapter, Family, UnsupportedModel

# The modules of this package that serve every family; each other module is one family's (or a few related ones').
SHARED_MODULES = ("base", "facts", "tiny", "tokenizers")


def _family_modules() -> list:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in SHARED_MODULES)
    modules = [importlib.import_module(f"{__name__}.{name}") for name in names]
    for module in modules:
        if not isinstance(getattr(module, "FAMILIES", None), tuple):
            raise TypeError(
                f"{module.__name__} defines no FAMILIES tuple: every module of {__name__} is a family's, unless "
                f"SHARED_MODULES lists it."
            )
    return modules


FAMILIES: tuple[Family, ...] = tuple(f for module in _family_modules() for f in module.FAMILIES)
BY_NAME = {f.name: f for f in FAMILIES}
BY_PIPELINE = {p: f for f in FAMILIES for p in f.pipelines}


def supported_list() -> str:
    return "; ".join(f"{f.name}: {', '.join(f.pipelines)}" for f in FAMILIES)


def family_named(name: str) -> Family:
    """The family called `name` (model.tiny.family); ValueError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"model.tiny.family {name!r}: expected one of {', '.join(BY_NAME)}") from None


def family_for_class(class_name: str, where: str = "the model") -> Family:
    """The family serving pipeline class `class_name`; UnsupportedModel (naming the supported ones) otherwise."""
    fam = BY_PIPELINE.get(class_name)
    if fam is None:
        raise UnsupportedModel(
            f"{where} is a {class_name or '(no _class_name)'}, which gendistill cannot sample from. Supported "
            f"pipeline families: {supported_list()}. Fix: point model.source at a checkpoint of one of these "
            f"(README, Supported generators)."
        )
    return fam


def family_of(pipe) -> Family:
    """The family of a pipeline object, from its class (or the nearest supported base class)."""
    for cls in type(pipe).__mro__:
        if cls.__name__ in BY_PIPELINE:
            return BY_PIPELINE[cls.__name__]
    return family_for_class(type(pipe).__name__, "the loaded pipeline")  # raises, naming the supported ones


def adapter_for(pipe, device=None, family: str | None = None) -> Adapter:
    """The adapter of `pipe`'s family (from its class, or `family` when given); UnsupportedModel otherwise."""
    return (family_named(family) if family else family_of(pipe)).adapter_for(pipe, device)
