"""Where a run's files live, stage by stage: the one definition, used by the rules (their outputs; the rules
that consume a file take it from `rules.<name>.output`) and by library code that reads a finished run
(regenerate, the summary).

Paths are strings, as Snakemake takes them; arguments default to the rules' wildcards ("{cls}", ...).
A stage that holds classes has one subdirectory per class, named by the class id (gendistill.naming).
"""

from __future__ import annotations

import json
from pathlib import Path

# In every class directory (generated, augmented): {"meta": what made the class, "images": one record per file}
RECORDS = "records.json"


class RunLayout:
    # A plain class, not a dataclass: every sample job imports this module (for RECORDS), and `dataclasses`
    # imports `inspect`, ~5 ms of a job that runs once per class.
    __slots__ = ("root",)

    def __init__(self, root: str):  # <results_dir>/<run>
        self.root = str(root)

    def __repr__(self) -> str:
        return f"RunLayout({self.root!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunLayout) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def _at(self, *parts: str) -> str:
        return "/".join((str(self.root), *parts))

    # prompts -> sampling -> augmentation -> packaging -> evaluation -> results and report
    @property
    def prompts(self) -> str:
        return self._at("prompts.csv")

    def generated(self, cls: str = "{cls}") -> str:
        return class_dir(self._at("generated"), cls)

    @property
    def augmented(self) -> str:
        return self._at("augmented")

    @property
    def distilled(self) -> str:
        return self._at("dataset", "distilled.pt")

    @property
    def manifest(self) -> str:
        return self._at("dataset", "manifest.csv")

    @property
    def imagefolder(self) -> str:
        return self._at("dataset", "imagefolder")

    @property
    def provenance(self) -> str:
        return self._at("dataset", "provenance.json")

    def metrics(self, set: str = "{set}", model: str = "{model}", seed: str = "{seed}") -> str:
        return self._at("eval", set, model, f"seed{seed}.json")

    def results(self, name: str) -> str:
        """A file of the run's results (tables, plots): results/<name>; the tables read back by name below."""
        return self._at("results", name)

    @property
    def summary(self) -> str:
        """Accuracy per (training set, model), mean +- std over training seeds."""
        return self.results("summary.csv")

    @property
    def recognition(self) -> str:
        return self.results("recognition.csv")

    @property
    def ablation(self) -> str:
        return self.results("ablation.csv")

    @property
    def report(self) -> str:
        return self._at("report")

    @property
    def benchmarks(self) -> str:
        return self._at("benchmarks")


def class_dir(stage_dir: str, cls: str) -> str:
    """One class's subdirectory of a stage directory (generated, augmented)."""
    return f"{stage_dir}/{cls}"


def read_records(class_dir: str | Path) -> dict:
    """A class directory's records file (RECORDS)."""
    return json.loads((Path(class_dir) / RECORDS).read_text())
