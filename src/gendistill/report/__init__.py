"""Report helpers: plots of the evaluation, per-class sample grids, run-time summary, HTML tables."""

from __future__ import annotations

from importlib.util import find_spec

# What the report's rules import beyond the core dependencies: the project's `report` extra.
REPORT_PACKAGES = ("matplotlib",)


def missing_packages() -> list[str]:
    """The report's packages that are not installed (a compute node's install may leave the extra out)."""
    return [name for name in REPORT_PACKAGES if find_spec(name) is None]
