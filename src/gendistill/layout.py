"""Where a run's files live, stage by stage: the one definition, used by the rules (their outputs; the rules
that consume a file take it from `rules.<name>.output`, or from here where the rule that writes it is defined
later) and by library code that reads a finished run (regenerate, the summary).

Paths are strings, as Snakemake takes them; arguments default to the rules' wildcards ("{cls}", ...). An
ablation's packaged set is a SetLayout (its files in one directory).
A stage that holds classes has one subdirectory per class, named by the class id (gendistill.naming).

One rule serves a stage for the run and its ablations: a scope puts the ablations' files under their own
directory (RUN: the run's own files; ABLATION, TEACHER_ABLATION, a generation method's method_scope(name)), and is
the rules' `{scope}` wildcard.
"""

from __future__ import annotations

import json
from pathlib import Path

# Scopes: where a stage's files for the run itself, or for an ablation beside it, live (a path prefix)
RUN = ""
ABLATION = "ablation/"  # the PDA ablation's pool, sets and evaluations (the teacher ablation's evaluations too)
TEACHER_ABLATION = "ablation/teacher/"  # the teacher ablation's selections and sets
METHODS = "ablation/methods/"  # the generation methods (ablation.methods): one scope per method, method_scope(name)


def method_scope(name: str) -> str:
    """The scope of generation method `name` (ablation.methods): its samples, selections, set and evaluations."""
    return f"{METHODS}{name}/"


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

    # prompts -> sampling [-> teacher -> selection] -> augmentation -> packaging [-> soft labels] -> evaluation
    # (and the selection baselines') -> results and report; beside them class recognition, fidelity and the ablations
    @property
    def prompts(self) -> str:
        return self._at("prompts.csv")

    # What the sample (and prompts) jobs read instead of command-line options: private files named by their
    # content (gendistill.sampling.request), written when the workflow plans the jobs
    @property
    def requests(self) -> str:
        return self._at(".requests")

    def prototypes(self, cls: str = "{cls}") -> str:
        """A class's real training latents, clustered (generation.init: prototypes, real_guidance)."""
        return self._at("prototypes", f"{cls}.pt")

    def generated(self, cls: str = "{cls}") -> str:
        """A class's sampled images (its candidates, with selection)."""
        return self.scoped_generated(RUN, cls)

    # The teacher (teacher.py), when something uses it: the model, and its record (sha256, source, test accuracy)
    @property
    def teacher(self) -> str:
        return self._at("teacher", "teacher.pt")

    @property
    def teacher_json(self) -> str:
        return self._at("teacher", "teacher.json")

    # Selection (selection.oversample > 1): a class's kept candidates, and every candidate's scores
    def selected(self, cls: str = "{cls}") -> str:
        return self.scoped_selected(RUN, "", cls)

    def selection_scores(self, cls: str = "{cls}") -> str:
        return self.scoped_selection_scores(RUN, "", cls)

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

    @property
    def soft_labels(self) -> str:
        """The teacher's logits for the packaged images (evaluation.labels: soft), aligned with distilled.pt."""
        return self._at("dataset", "soft_labels.pt")

    def metrics(self, set: str = "{set}", model: str = "{model}", seed: str = "{seed}") -> str:
        return self.scoped_metrics(RUN, set, model, seed)

    def kd_cache(self, set: str = "{set}", images: str = "{images}") -> str:
        """The teacher's stored outputs for evaluation run `set` (labels kd, evaluation.kd.cache) on its training
        images: `images` "set" for the distilled set, "subset<seed>" for the random real subset of a seed."""
        return self.scoped_kd_cache(RUN, set, images)

    def kd_cache_record(self, set: str = "{set}", images: str = "{images}") -> str:
        return self.scoped_kd_cache_record(RUN, set, images)

    # The selection baselines (evaluation.baselines: kmeans_real, rded): the set the teacher picks, in
    # distilled.pt's format, and what was picked (source images or crops, with their scores)
    def baseline_set(self, baseline: str = "{baseline}") -> str:
        return self._at("baselines", baseline, "set.pt")

    def baseline_picks(self, baseline: str = "{baseline}") -> str:
        return self._at("baselines", baseline, "picks.csv")

    # Class recognition: the classifier trained on the real training split, and its record
    @property
    def recogniser(self) -> str:
        return self._at("recognition", "classifier.pt")

    @property
    def recogniser_json(self) -> str:
        return self._at("recognition", "classifier.json")

    # The PDA ablation: one pool of generated images per class (shared with the teacher ablation), a packaged set
    # per variant, an evaluation per (variant, model, seed) (the teacher ablation's variants too)
    def ablation_generated(self, cls: str = "{cls}") -> str:
        return self.scoped_generated(ABLATION, cls)

    def ablation_set(self, variant: str = "{variant}") -> SetLayout:
        return SetLayout(self._at("ablation", "sets", variant))

    def ablation_metrics(self, variant: str = "{variant}", model: str = "{model}", seed: str = "{seed}") -> str:
        return self.scoped_metrics(ABLATION, variant, model, seed)

    # The teacher ablation: per selection criterion, each class's kept candidates of the ablation pool, and the
    # packaged set they make
    def teacher_ablation_selected(self, criterion: str = "{criterion}", cls: str = "{cls}") -> str:
        return self.scoped_selected(TEACHER_ABLATION, f"{criterion}/", cls)

    # The outputs of a rule that serves a stage for the run and an ablation: `scope` RUN or an ablation's (its
    # {scope} wildcard; the files above are these at one scope). The teacher ablation selects per criterion:
    # `criterion_dir` "<criterion>/" (the run's selection: "")
    def scoped_generated(self, scope: str = "{scope}", cls: str = "{cls}") -> str:
        return class_dir(self._at(f"{scope}generated"), cls)

    def scoped_selected(
        self, scope: str = "{scope}", criterion_dir: str = "{criterion_dir}", cls: str = "{cls}"
    ) -> str:
        return class_dir(self._at(f"{scope}selected"), f"{criterion_dir}{cls}")

    def scoped_selection_scores(
        self, scope: str = "{scope}", criterion_dir: str = "{criterion_dir}", cls: str = "{cls}"
    ) -> str:
        return self._at(f"{scope}selection", f"{criterion_dir}{cls}.csv")

    def scoped_metrics(
        self, scope: str = "{scope}", set: str = "{set}", model: str = "{model}", seed: str = "{seed}"
    ) -> str:
        """An evaluation's accuracy: of one of the run's evaluations (set: its key), or an ablation variant's."""
        return self._at(f"{scope}eval", set, model, f"seed{seed}.json")

    def scoped_kd_cache(self, scope: str = "{scope}", set: str = "{set}", images: str = "{images}") -> str:
        """A kd cache of the run's evaluations (kd_cache above) or of a generation method's (its scope)."""
        return self._at(f"{scope}eval", "kd_cache", set, f"{images}.pt")

    def scoped_kd_cache_record(self, scope: str = "{scope}", set: str = "{set}", images: str = "{images}") -> str:
        return self._at(f"{scope}eval", "kd_cache", set, f"{images}.json")

    def teacher_ablation_set(self, criterion: str = "{criterion}") -> SetLayout:
        return SetLayout(self._at("ablation", "teacher", "sets", criterion))

    # A generation method (ablation.methods): its samples and selections are the sample and select rules' outputs
    # in its scope (method_scope); its packaged set, in distilled.pt's format, and that set's soft labels here
    def method_set(self, method: str = "{method}") -> SetLayout:
        return SetLayout(self._at(method_scope(method).rstrip("/")), tensor="set.pt")

    def results(self, name: str) -> str:
        """A file of the run's results (tables, plots): results/<name>; the tables read back by name below."""
        return self._at("results", name)

    @property
    def summary(self) -> str:
        """Accuracy per (training set, model), mean +- std over training seeds."""
        return self.results("summary.csv")

    @property
    def evaluation_provenance(self) -> str:
        """What the evaluation ran: its protocol (sources, overridden keys), every run's recipe, the teacher."""
        return self.results("evaluation_provenance.json")

    @property
    def recognition(self) -> str:
        return self.results("recognition.csv")

    @property
    def fidelity(self) -> str:
        """Precision, recall, density, coverage and Frechet distance of every evaluated set, one row per set."""
        return self.results("fidelity.csv")

    @property
    def ablation(self) -> str:
        return self.results("ablation.csv")

    @property
    def teacher_ablation(self) -> str:
        return self.results("teacher_ablation.csv")

    @property
    def report(self) -> str:
        return self._at("report")

    @property
    def benchmarks(self) -> str:
        return self._at("benchmarks")


class SetLayout:
    """An ablation's packaged set, in a directory of its own: its augmented images and what packaging writes
    (the run's own set is RunLayout.augmented and dataset/). `tensor`: the packaged file's name (distilled.pt's
    format either way)."""

    __slots__ = ("dir", "tensor")

    def __init__(self, dir: str, tensor: str = "distilled.pt"):
        self.dir = str(dir)
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"SetLayout({self.dir!r}, {self.tensor!r})"

    @property
    def augmented(self) -> str:
        return f"{self.dir}/augmented"

    @property
    def distilled(self) -> str:
        return f"{self.dir}/{self.tensor}"

    @property
    def soft_labels(self) -> str:
        """The teacher's logits of the set's images (a generation method's set with evaluation.labels soft)."""
        return f"{self.dir}/soft_labels.pt"

    @property
    def manifest(self) -> str:
        return f"{self.dir}/manifest.csv"

    @property
    def imagefolder(self) -> str:
        return f"{self.dir}/imagefolder"


def class_dir(stage_dir: str, cls: str) -> str:
    """One class's subdirectory of a stage directory (generated, augmented)."""
    return f"{stage_dir}/{cls}"


def read_records(class_dir: str | Path) -> dict:
    """A class directory's records file (RECORDS)."""
    return json.loads((Path(class_dir) / RECORDS).read_text())
