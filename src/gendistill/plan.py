"""Resolve a validated config into the run plan: which classes, their prompts, seeds and counts, and where
the model and data are. Runs when Snakemake builds the DAG, so every check here happens before any job.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from .ablation.variants import Ablations, method_configs, method_name_problems
from .config import CPU_FLOAT16, ConfigError, load_and_validate, nominal_ipc
from .datasets import DatasetError, get_adapter
from .devices import gpu_visible
from .evaluation.protocols import Context, apply_protocol
from .evaluation.runs import (
    EvalJob,
    EvalRun,
    eval_runs,
    evaluation_problems,
    file_set,
    is_method_set,
    kd_cached,
    label_regimes,
    parse_key,
    rded_factor,
    recipe,
    record,
    seeds,
    selection_baselines,
    uses_teacher,
)
from .families import BY_NAME, UnsupportedModel
from .families.facts import decoder_facts, generation_problems, model_facts, tiny_facts
from .generator.fit import FIT_VERSION, full_spec, spec_problems
from .layout import ABLATION, RUN, TEACHER_ABLATION, RunLayout
from .naming import class_ids
from .pipeline_memory import available_bytes, memory_problem, total_bytes
from .sampling.load_spec import load_spec, resolve

# generation keys that decide pixels (recorded in the packaged dataset); the other keys are runtime knobs
PIXEL_KEYS = (
    "n_generated",
    "resolution",
    "steps",
    "guidance_scale",
    "device",
    "dtype",
    "vae_dtype",
    "decoder",
    "tiny_decoder",
)


@dataclass(frozen=True)
class ClassPlan:
    """Everything that determines one class's generated images (its sample job's params)."""

    index: int  # the dataset's label for this class
    name: str
    id: str  # file-safe, unique, sorts in label order
    prompt: str
    seed: int
    n_generated: int  # images the class keeps: generation.n_generated, or its prompts.overrides count

    def as_dict(self) -> dict:
        return asdict(self)

    def candidates(self, oversample: int) -> int:
        """Images sampled so that a criterion keeps n_generated, `oversample` candidates per kept image (candidate
        i has image i's seed, so the first n_generated are the images a run without selection samples)."""
        return oversample * self.n_generated


@dataclass
class Plan:
    cfg: dict
    classes: list[ClassPlan]
    all_class_names: list[str]
    image_size: int
    mean: tuple
    std: tuple
    has_real_data: bool
    model_dir: str | None  # built model directory (tiny random-weight or fitted stand-in), else None
    model_source: str
    model_kind: str = "pretrained"  # "tiny" (random weights), "fitted" (stand-in fitted on the demo data), "pretrained"
    family: str | None = None  # the generator's family, where the plan knows it (None: a hub model not yet cached)
    # label -> (training images, fingerprint) of the run's classes, when generation reads real data
    real_fingerprints: dict | None = None
    # evaluation.protocol as resolved: its name and the keys the config overrode (evaluation/protocols.py)
    evaluation_protocol: dict | None = None
    # ablation.methods: name -> the config the method generates its set with (ablation.variants.method_config)
    method_cfgs: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg["results_dir"]) / self.cfg["run"]

    @property
    def layout(self) -> RunLayout:
        return RunLayout(str(self.out))

    def by_id(self, cid: str) -> ClassPlan:
        return self._index[cid]

    @cached_property
    def load_spec(self) -> dict:
        """What the sampler loads (the sample jobs' `load` param), its model resolved to the weights it names now:
        a hub id's cached snapshot, a local directory's content hash (sampling.load_spec.resolve). So a replaced
        model, or a hub cache moved to an updated snapshot, reruns every class; a directory the workflow builds is
        an input of the sample rule instead."""
        return resolve(load_spec(self.cfg, self.model_source), self.model_dir, self.file_hashes)

    @property
    def file_hashes(self) -> Path:
        """The cache of the model files' content hashes (model_files.content_sha256), shared by the results
        directory's runs."""
        return Path(self.cfg["results_dir"]) / ".model-file-hashes.json"

    @property
    def gen_spec(self) -> dict:
        """The generation settings of the run's pipeline calls (gen_spec)."""
        return gen_spec(self.cfg)

    def scoped_cfg(self, scope: str) -> dict:
        """The config a scope's jobs generate with: a generation method's (ablation.methods), else the run's."""
        name = self.ablations.method_of(scope)
        return self.method_cfgs[name] if name else self.cfg

    def scoped_gen_spec(self, scope: str) -> dict:
        """A sample job's generation settings: the run's, or (its scope) a generation method's."""
        return gen_spec(self.scoped_cfg(scope))

    # --- generation from real data (generation.init: prototypes, generation.real_guidance) ---
    @property
    def real_data_active(self) -> bool:
        """The run's own sample jobs read their class's prototypes file (gendistill.prototypes)."""
        return uses_real_latents(self.cfg)

    def reads_prototypes(self, scope: str) -> bool:
        """The sample jobs of `scope` (the run's, the ablations' pool, a generation method's) read the prototypes."""
        return uses_real_latents(self.scoped_cfg(scope))

    @property
    def prototypes_needed(self) -> bool:
        """Some sample job reads the prototypes: the run's, or a generation method's. Their file depends on the
        class and the model only (prototype_spec), so the run and its methods share one per class."""
        return self.real_data_active or any(uses_real_latents(c) for c in self.method_cfgs.values())

    def prototype_spec(self, cid: str) -> dict:
        """What decides class `cid`'s prototypes file: the class (label, kept count, seed), its training images'
        fingerprint, the sampling resolution, the model and its family. The prototypes job's params, and part of
        the sample job's (so a class is resampled exactly when its prototypes change)."""
        c = self.by_id(cid)
        count, fingerprint = self.real_fingerprints[c.index]
        return {
            "label": c.index,
            "n": c.n_generated,
            "seed": c.seed,
            "train_images": count,
            "fingerprint": fingerprint,
            "resolution": self.cfg["generation"]["resolution"],
            "load": self.load_spec,
            "family": self.family,
        }

    @property
    def recorded_config(self) -> dict:
        """The config keys that decide the packaged dataset, as its provenance records them."""
        return {
            **{k: self.cfg[k] for k in ("run", "seed", "ipc", "dataset", "prompts", "model", "augmentation")},
            "generation": {k: self.cfg["generation"][k] for k in PIXEL_KEYS},
        }

    @property
    def sampler_runtime(self) -> dict:
        """Sampling knobs that do not decide pixels (batch size may still round one value by a level: README,
        Reproducibility): passed to the sample jobs outside their params."""
        g = self.cfg["generation"]
        return {
            "server": g["server"],
            "idle": g["server_idle_seconds"],
            "server_timeout": g["server_timeout_seconds"],
            "batch_size": g["batch_size"],
            "compile": g["compile"],
            "deterministic": g["deterministic"],
            "max_retries": g["max_retries"],
            "gpus": g["gpus"],
            "check_memory": self.cfg["limits"]["check_memory"],
        }

    def __post_init__(self):
        self._index = {c.id: c for c in self.classes}

    def model_problems(self) -> list[str]:
        """What keeps the model from sampling this run: a pretrained model that is missing or incomplete, else what
        its family cannot do with these settings. build_plan checks this unless told not to; the workflow checks
        it when it plans a sample job, so targets that need no model (the prompt table) never check it."""
        m = self.cfg["model"]
        if self.model_kind == "pretrained":
            problem = model_problem(
                m["source"], m["revision"], m["allow_download"], load_variants(self.cfg, m["source"])
            )
            if problem:
                return [problem]
        return family_problems(self.cfg, self.classes)

    # --- what runs (the rules' conditions) ---
    @property
    def evaluation_active(self) -> bool:
        return bool(self.cfg["evaluation"]["activate"]) and self.has_real_data

    @property
    def recognition_active(self) -> bool:
        return bool(self.cfg["recognition"]["activate"]) and self.has_real_data

    @property
    def selection_active(self) -> bool:
        return self.cfg["selection"]["oversample"] > 1

    @property
    def soft_labels_active(self) -> bool:
        """The distilled set is evaluated with fixed soft labels: the package's soft-label sidecar is needed."""
        return self.evaluation_active and "soft" in label_regimes(self.cfg)

    @property
    def run_uses_teacher(self) -> bool:
        """The run's own dataset or evaluation uses the teacher (not only the teacher ablation beside it)."""
        return self.selection_active or self.soft_labels_active

    @property
    def teacher_active(self) -> bool:
        """Something needs the teacher: selection, soft labels, the selection baselines, the fidelity measure on its
        features or the teacher ablation (teacher_uses)."""
        return bool(teacher_uses(self.cfg, self.has_real_data))

    # --- counts per class: a class keeps c.n_generated images; its sample job samples n_candidates of them
    # (oversample x kept, with selection), the ablations' pool job pool_size; PDA makes images_per_class ---
    def n_candidates(self, c: ClassPlan) -> int:
        """Images the run's sample job of class `c` generates: selection.oversample x its kept count."""
        return c.candidates(self.cfg["selection"]["oversample"])

    def images_per_class(self, c: ClassPlan) -> int:
        """Images of class `c` in the packaged set: its kept images, each followed by n_aug augmented copies."""
        return c.n_generated * (1 + self.cfg["augmentation"]["n_aug"])

    @property
    def images_per_class_by_label(self) -> dict[int, int]:
        """label -> images_per_class: the random real subset that matches the distilled set, class by class."""
        return {c.index: self.images_per_class(c) for c in self.classes}

    @property
    def ipc(self) -> int:
        return nominal_ipc(self.cfg)

    @cached_property
    def ablations(self) -> Ablations:
        """The PDA and teacher ablations' variants, pool and evaluations (gendistill.ablation.variants)."""
        return Ablations(self)

    def sampled(self, scope: str, cid: str) -> int:
        """Images a sample job generates for class `cid`: the run's candidates (scope RUN), the ablations' pool, or
        a generation method's candidates (its scope)."""
        c = self.by_id(cid)
        if scope == ABLATION:
            return self.ablations.pool_size(c)
        if method := self.ablations.method_of(scope):
            return self.ablations.method_candidates(method, c)
        return self.n_candidates(c)

    def sample_class(self, scope: str, cid: str) -> dict:
        """A sample job's class: the class plan with `n_generated` the count the job samples (its wire name), and
        its prototypes file when the scope's generation reads real data."""
        out = {**self.by_id(cid).as_dict(), "n_generated": self.sampled(scope, cid)}
        if self.reads_prototypes(scope):
            out["prototypes"] = str(Path(self.layout.prototypes(cid)).resolve())
            out["prototypes_spec"] = self.prototype_spec(cid)  # a change of the file's inputs resamples the class
        return out

    def kept_images(self, cid: str) -> str:
        """Where PDA reads class `cid`'s images: its kept candidates with selection, else its sampled images."""
        return self.layout.selected(cid) if self.selection_active else self.layout.generated(cid)

    def selection(self, scope: str, criterion_dir: str, cid: str) -> dict:
        """A select job (scope RUN: the run's selection; TEACHER_ABLATION: criterion_dir's over the ablations'
        pool; a generation method's scope: its selection over its candidates): criterion, the candidates
        directory, n_candidates, n_keep."""
        c = self.by_id(cid)
        if scope == TEACHER_ABLATION:
            criterion = criterion_dir.rstrip("/")
            pool, n = self.layout.ablation_generated(cid), self.ablations.n_candidates(c)
        elif method := self.ablations.method_of(scope):
            criterion = self.method_cfgs[method]["selection"]["criterion"]
            pool, n = self.layout.scoped_generated(scope, cid), self.ablations.method_candidates(method, c)
        else:
            criterion, pool, n = self.cfg["selection"]["criterion"], self.layout.generated(cid), self.n_candidates(c)
        return {"criterion": criterion, "candidates": pool, "n_candidates": n, "n_keep": c.n_generated}

    # --- evaluations ---
    @property
    def eval_runs(self) -> list[EvalRun]:
        """Every evaluation run of the config, in table order (gendistill.evaluation.runs)."""
        return eval_runs(self.cfg, self.has_real_data)

    def run_metrics(self) -> list[str]:
        """The evaluation JSON of every (run, model, seed) the results table reads: the run's, then its generation
        methods' (ablation.methods)."""
        models = self.cfg["evaluation"]["models"]
        own = [self.layout.metrics(r.key, m, s) for r in self.eval_runs for m in models for s in seeds(self.cfg, r)]
        return own + (self.ablations.method_metric_rows() if self.ablations.methods_active else [])

    @property
    def evaluation_record(self) -> dict:
        """What results/evaluation_provenance.json records: the protocol and every run's resolved recipe."""
        resolution = self.cfg["evaluation"]["resolution"] or self.image_size
        return record(self.cfg, self.evaluation_protocol, self.has_real_data, resolution)

    def kd_cache(self, scope: str, key: str, seed) -> str | None:
        """The kd cache an evaluate job reads (labels kd with evaluation.kd.cache; the run's own evaluations and
        its generation methods'): one per packaged set, one per seed of a random real subset (its images are the
        seed's)."""
        if scope == ABLATION or not kd_cached(self.cfg):
            return None
        job = self.evaluation(scope, key)
        if job.labels != "kd":
            return None
        return self.layout.scoped_kd_cache(scope, key, f"subset{seed}" if job.set == "random_subset" else "set")

    def kd_cache_job(self, scope: str, key: str, images: str) -> tuple[EvalJob, int]:
        """What a kd_cache job stores: the evaluation run `key`'s job (in `scope`: the run's, a generation
        method's), and the seed that picks its images (a random real subset's; 0 for a packaged set, whose images
        no seed picks)."""
        return self.evaluation(scope, key), int(images.removeprefix("subset")) if images != "set" else 0

    def evaluation(self, scope: str, key: str) -> EvalJob:
        """An evaluate job: of the run (scope RUN; `key` an evaluation run's key, gendistill.evaluation.runs), of
        an ablation variant (scope ABLATION; `key` its name), or of a generation method's set (its scope; `key`
        one of the distilled set's evaluation keys)."""
        if scope == ABLATION:
            return self.ablations.evaluation(key)
        if method := self.ablations.method_of(scope):
            return self.ablations.method_evaluation(method, key)
        run = parse_key(key, self.cfg)
        return EvalJob(
            run.set,
            run.labels,
            recipe(self.cfg, run),
            data=self.set_file(run.set) if file_set(run.set) else None,
            counts=self.images_per_class_by_label if run.set == "random_subset" else None,
        )

    def set_file(self, set_name: str) -> str:
        """The file a packaged set is read from: the distilled set's, a generation method's, or a selection
        baseline's."""
        if set_name == "distilled":
            return self.layout.distilled
        if is_method_set(set_name):
            return self.layout.method_set(set_name.split(":", 1)[1]).distilled
        return self.layout.baseline_set(set_name)

    def soft_labels_file(self, job: EvalJob) -> str | None:
        """The soft-label sidecar an evaluate job reads (a generated set in the soft regime): the distilled set's,
        or a generation method's set's."""
        if not job.reads_soft_labels:
            return None
        if is_method_set(job.set):
            return self.layout.method_set(job.set.split(":", 1)[1]).soft_labels
        return self.layout.soft_labels

    # --- the selection baselines and the fidelity measure ---
    @property
    def selection_baselines(self) -> list[str]:
        """The selection baselines the run evaluates (evaluation.baselines.kmeans_real, .rded)."""
        return selection_baselines(self.cfg, self.has_real_data) if self.evaluation_active else []

    @property
    def teacher_resolution(self) -> int:
        """The pixels the teacher sees (the evaluation's resolution): the selection baselines work at it."""
        return self.cfg["evaluation"]["resolution"] or self.image_size

    def baseline_selection(self, name: str) -> dict:
        """A select_baseline job: the method, per label the images to pick (the distilled set's count, as the
        random subset), the seed and the method's settings (RDED's factor resolved)."""
        base = self.cfg["evaluation"]["baselines"]
        settings = {}
        if name == "rded":
            settings = {
                "images": base["rded_images"],
                "crops": base["rded_crops"],
                "factor": rded_factor(self.cfg, self.teacher_resolution),
                "scale": list(base["rded_scale"]),
            }
        return {
            "method": name,
            "counts": {str(k): v for k, v in self.images_per_class_by_label.items()},
            "seed": base["selection_seed"],
            "settings": settings,
        }

    @property
    def fidelity_active(self) -> bool:
        return self.evaluation_active and bool(self.cfg["evaluation"]["fidelity"]["activate"])

    @property
    def fidelity_sets(self) -> list[str]:
        """The sets the fidelity measure compares with the real test split: every evaluated set, in table order
        (the generation methods' after the distilled set)."""
        own = list(dict.fromkeys(r.set for r in self.eval_runs))
        methods = [m["set"] for m in self.ablations.methods] if self.ablations.methods_active else []
        return own[:1] + methods + own[1:]

    @property
    def fidelity_spec(self) -> list[dict]:
        """What the fidelity job measures per set (gendistill.fidelity.measure_sets): a packaged set's file; the
        random subset's images per class and the evaluation seeds whose draws it measures; the full split."""
        out = []
        for s in self.fidelity_sets:
            if file_set(s):
                out.append({"set": s, "file": self.set_file(s)})
            elif s == "random_subset":
                counts = {str(k): v for k, v in self.images_per_class_by_label.items()}
                out.append({"set": s, "counts": counts, "seeds": list(self.cfg["evaluation"]["seeds"])})
            else:
                out.append({"set": s})
        return out

    # --- what making each set cost (results/summary.csv's make_wall_seconds) ---
    def _benchmark(self, *parts: str) -> str:
        return "/".join((self.layout.benchmarks, *parts))

    def making_benchmarks(self) -> dict[str, list[str]]:
        """set -> the benchmark files of the jobs that make it (their wall seconds summed: the set's making time).
        A generated set (the distilled set, a generation method's): its classes' prototypes when its generation
        reads them (one file per class, made once for the run and its methods, counted for each set that reads
        it), sample and select jobs, then augmentation and packaging (the run's augment and package jobs; a
        method's package job does both). A selection baseline: its select_baseline job. Not counted: what every
        set shares (the fitted stand-in's fit, the teacher); the random subset and the full data are drawn in
        their evaluation jobs, so they have none. Paths as the rules write them (workflow/rules/*.smk)."""
        ids = [c.id for c in self.classes]

        def generated(scope: str, selects: bool, packaging: list[str]) -> list[str]:
            out = [self._benchmark("prototypes", f"{c}.tsv") for c in ids] if self.reads_prototypes(scope) else []
            out += [self._benchmark(f"{scope}sample", f"{c}.tsv") for c in ids]
            out += [self._benchmark(f"{scope}select", f"{c}.tsv") for c in ids] if selects else []
            return out + packaging

        sets = {
            "distilled": generated(
                RUN, self.selection_active, [self._benchmark(f) for f in ("augment.tsv", "package.tsv")]
            )
        }
        if self.ablations.methods_active:
            for m in self.ablations.methods:
                package = [self._benchmark(f"{m['scope']}package.tsv")]
                sets[m["set"]] = generated(m["scope"], self.ablations.method_selects(m["name"]), package)
        for b in self.selection_baselines:
            sets[b] = [self._benchmark("baselines", f"{b}.tsv")]
        return sets


def tiny_model_dir(cfg: dict) -> str | None:
    spec = cfg["model"].get("tiny")
    if spec is None:
        return None
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return str(Path(cfg["results_dir"]) / "models" / f"tiny-{spec.get('family', 'sdxl')}-{h}")


def fitted_model_identity(cfg: dict) -> dict | None:
    """What determines the fitted stand-in's weights: its spec, the data it is fitted to, the recipe version."""
    spec = cfg["model"].get("fitted")
    if spec is None:
        return None
    ds = cfg["dataset"]
    return {
        "spec": full_spec(spec),
        "fit_version": FIT_VERSION,
        "dataset": {"name": ds["name"], "split_seed": ds.get("split_seed", 0), "image_size": ds.get("image_size")},
    }


def fitted_model_dir(cfg: dict) -> str | None:
    ident = fitted_model_identity(cfg)
    if ident is None:
        return None
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    return str(Path(cfg["results_dir"]) / "models" / f"fitted-sdxl-{h}")


def model_kind(cfg: dict) -> str:
    return (
        "tiny"
        if cfg["model"].get("tiny") is not None
        else ("fitted" if cfg["model"].get("fitted") is not None else "pretrained")
    )


def gen_spec(cfg: dict) -> dict:
    """The generation settings of every pipeline call of a config (a sample job's `gen` param: they decide pixels).
    The keys of generation from real data only when it is on, so that other configs keep their params (and
    caches)."""
    g = cfg["generation"]
    spec = {k: g[k] for k in ("resolution", "steps", "guidance_scale")}
    if g["init"] == "prototypes":
        spec.update(init="prototypes", strength=g["strength"])
    if g["real_guidance"]:
        spec["real_guidance"] = g["real_guidance"]
    return spec


def method_problems(
    cfg: dict, methods: dict, classes: list, family: str | None, has_real_data: bool, image_size: int
) -> list[str]:
    """ablation.methods: what the run cannot compare, and what each method's config (`methods`: name -> config)
    cannot do by the run's own checks of generation and selection: the same messages, naming the method (a problem
    the run's own config has too is the run's, reported once)."""
    problems = []
    if cfg["ablation"]["methods"] and not (has_real_data and cfg["evaluation"]["activate"]):
        problems.append(
            "ablation.methods: each method's set is evaluated like the distilled set, on the real test set, so it "
            "needs a dataset with real images and evaluation.activate: true. Fix: enable evaluation (with such a "
            "dataset) or set ablation.methods: []."
        )

    def checks(c: dict) -> list[str]:
        return (
            fitted_problems(c, image_size)
            + real_data_problems(c, family, has_real_data)
            + teacher_problems(c, classes, has_real_data)
        )

    own = set(checks(cfg)) if methods else set()
    for name, mc in methods.items():
        problems += [f"ablation.methods {name!r}: {p}" for p in checks(mc) if p not in own]
    return problems


def uses_real_latents(cfg: dict) -> bool:
    """Generation reads each class's real training latents (generation.init prototypes, or real guidance)."""
    g = cfg["generation"]
    return g["init"] == "prototypes" or bool(g["real_guidance"])


def real_data_problems(cfg: dict, family: str | None, has_real_data: bool) -> list[str]:
    """generation.init: prototypes and generation.real_guidance: what this config cannot do, each with its fix."""
    from .prototypes import GUIDED, IMG2IMG

    g = cfg["generation"]
    problems = []
    init, rg = g["init"] == "prototypes", g["real_guidance"]
    if (init or rg) and not has_real_data:
        what = " and ".join(x for x, on in (("generation.init: prototypes", init), ("real_guidance", rg)) if on)
        problems.append(
            f"{what} starts from or steers toward the class's real training images, and dataset "
            f"{cfg['dataset']['name']!r} has none. Fix: a dataset with a train split (imagefolder: "
            f"<root>/train/<class>/), or generation.init: noise and real_guidance: null."
        )
    if init and family is not None and family not in IMG2IMG:
        problems.append(
            f"generation.init: prototypes needs an img2img pipeline, and diffusers has none for the {family} "
            f"family. Fix: generation.init: noise, or a model of the families {', '.join(IMG2IMG)}."
        )
    if init and g["steps"] * g["strength"] < 1:
        need = -(-1 // g["strength"])  # ceil(1 / strength)
        problems.append(
            f"generation.strength {g['strength']} x steps {g['steps']} < 1: the img2img pipeline runs "
            f"int(steps x strength) steps, here none. Fix: generation.steps >= {int(need)} (or a larger strength)."
        )
    if rg:
        if g["steps"] < 2:
            problems.append(
                f"generation.real_guidance guides multi-step sampling, and generation.steps is {g['steps']}. Fix: "
                f"generation.steps >= 2 (CoDA samples 25), or real_guidance: null."
            )
        if family is not None and family not in GUIDED:
            problems.append(
                f"generation.real_guidance (CoDA) steers a UNet on a discrete-time schedule, and the model is of "
                f"the {family} family. Fix: a model of the families {', '.join(GUIDED)}, or real_guidance: null."
            )
    return problems


def fitted_problems(cfg: dict, image_size: int) -> list[str]:
    """model.fitted: the stand-in is fitted for one dataset, one resolution and the one-step sampler (or, with
    denoise_weight > 0, for every timestep)."""
    if cfg["model"].get("fitted") is None:
        return []
    problems = []
    if cfg["model"].get("tiny") is not None:
        problems.append(
            "model: both tiny (random weights) and fitted (stand-in fitted on the demo data) are set. "
            "Fix: keep one of them (model.tiny: null or model.fitted: null)."
        )
    problems += spec_problems(cfg["model"]["fitted"], cfg["dataset"])
    gen = cfg["generation"]
    if gen["resolution"] != image_size:
        problems.append(
            f"generation.resolution: {gen['resolution']}, but model.fitted is fitted at the dataset's "
            f"{image_size} px (it has never seen another size). Fix: generation.resolution: {image_size}."
        )
    if gen["steps"] != 1 and not full_spec(cfg["model"]["fitted"])["denoise_weight"] > 0:
        problems.append(
            f"generation.steps: {gen['steps']}, but model.fitted is fitted for the one trailing "
            f"Euler-ancestral step SDXL-Turbo is used with. Fix: generation.steps: 1, or fit it over every "
            f"timestep (model.fitted.denoise_weight > 0, e.g. 1)."
        )
    if gen["guidance_scale"] > 1.0:
        problems.append(
            f"generation.guidance_scale: {gen['guidance_scale']}, but model.fitted learned no "
            f"unconditional (empty-prompt) prediction, which guidance needs. Fix: guidance_scale: 0."
        )
    return problems


def load_variants(cfg: dict, source: str) -> tuple[set, str]:
    """The weight variants the sampler's load may ask diffusers for ({None}: the plain files; {'fp16'}; or both
    when generation.device is auto and the plan cannot know whether the jobs get a GPU), and why none is asked
    for. Mirrors sampling.pipeline.load_pipeline: the fp16 variant for a hub id loaded in float16."""
    g = cfg["generation"]
    if _is_local(source):
        return {None}, "a local model directory is loaded without a variant (the plain files)"
    if g["dtype"] == "float16" or (g["dtype"] == "auto" and g["device"] == "cuda"):
        return {"fp16"}, ""
    if g["dtype"] == "auto" and g["device"] == "auto":
        return {None, "fp16"}, (
            "generation.device: auto loads the plain files on a machine without a GPU (dtype auto is float32 "
            "there), so every class would fail wherever no GPU is visible"
        )
    return {None}, f"generation.dtype {g['dtype']} on device {g['device']} loads the plain files"


def _weights_problem(root: Path, label: str, variants: set = frozenset({None}), no_variant_why: str = "") -> str | None:
    """None when every weighted component listed in root/model_index.json has weights that load (the files
    diffusers would choose, their headers whole); else what is wrong, file by file."""
    from .weights import pipeline_problems

    try:
        problems = pipeline_problems(root, variants, no_variant_why)
    except (OSError, ValueError) as e:
        return f"model.source: {label}: model_index.json cannot be read ({e}). Fix: re-download the model."
    if not problems:
        return None
    variant_only = [p for p in problems if "only as the" in p]
    fix = (
        "download the model again (`hf download <id> --local-dir <dir>`; a copy or download that stopped "
        "early leaves files like these), or `save_pretrained` it there"
    )
    if variant_only:
        fix = (
            "download the plain weights too (`hf download <id> --include '<component>/*.safetensors'`, or "
            "`save_pretrained` without a variant); or, for a hub model on a GPU, generation.device: cuda with "
            "dtype auto or float16, which asks for the fp16 variant"
        )
    return (
        f"model.source: {label} cannot be loaded: {'; '.join(problems[:6])}{' ...' if len(problems) > 6 else ''}. "
        f"Every sample job would fail loading it. Fix: {fix}."
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _is_local(source: str) -> bool:
    """A local directory (or meant as one: a path that does not exist yet), not a hub id."""
    return Path(source).expanduser().exists() or source.startswith((".", "/", "~"))


def _root_holding(source: str, revision: str | None, marker: str) -> Path | None:
    """The directory holding `source`'s `marker` file: the local directory, or the cached hub snapshot; None
    when neither is there (an uncached hub id)."""
    if _is_local(source):
        p = Path(source).expanduser()
        return p if (p / marker).is_file() else None
    from .hf_cache import cached_snapshot

    found = cached_snapshot(source, revision)  # as the sample job resolves it for the sampler's key
    return found[1] if found and (found[1] / marker).is_file() else None


def model_root(source: str, revision: str | None) -> Path | None:
    """The directory holding a pipeline's model_index.json (local, or the cached hub snapshot), or None."""
    return _root_holding(source, revision, "model_index.json")


def model_problem(
    source: str, revision: str | None, allow_download: bool = False, variants: tuple = (set([None]), "")
) -> str | None:
    """None when the model can be loaded without surprises; else the problem and its fix.

    A local directory must hold model_index.json and the weights of every component it lists, whole, as
    diffusers chooses them for the `variants` the load may ask for (load_variants). A hub id must be in the
    local Hugging Face cache, complete, unless downloads are allowed (and possible).
    """
    root = model_root(source, revision)
    if _is_local(source):
        p = Path(source).expanduser()
        if root is None:
            return (
                f"model.source: local directory {p} has no model_index.json (is it a diffusers pipeline "
                f"directory?). Fix: on a machine with internet run `hf download stabilityai/sdxl-turbo "
                f"--local-dir {p}` (or `save_pretrained` the pipeline there), copy it here, and point "
                f"model.source at it."
            )
        return _weights_problem(p, str(p), *variants)
    short = source.split("/")[-1]
    get_it = (
        f"on a machine with internet run `hf download {source} --local-dir models/{short}`, copy that "
        f"directory here and set model.source: models/{short} (or copy the HF cache into $HF_HOME)"
    )
    if root is not None:
        problem = _weights_problem(root, f"{source!r} in the Hugging Face cache", *variants)
        if problem is None or allow_download and not _offline():
            return None
        return problem.replace("Fix: download the model again", f"Fix: {get_it}; or download the model again")
    if _offline():
        return (
            f"model.source: {source!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it "
            f"cannot be downloaded. Fix: {get_it}."
        )
    if allow_download:
        return None
    return (
        f"model.source: {source!r} is not in the Hugging Face cache; the first sample job would have to "
        f"download it (and without a network every class would fail). Fix: {get_it}; or set "
        f"model.allow_download: true to let the first sample job download it."
    )


def _hf_fix(source: str) -> str:
    short = source.split("/")[-1]
    return (
        f"on a machine with internet run `hf download {source} --local-dir models/{short}`, copy that "
        f"directory here and point the key at models/{short}"
    )


def decoder_root(source: str, revision: str | None = None) -> Path | None:
    """The directory holding a tiny decoder's config.json (local, or the cached hub snapshot), or None."""
    return _root_holding(source, revision, "config.json")


def decoder_problem(source: str, allow_download: bool = False) -> str | None:
    """None when the tiny decoder at `source` (local directory or hub id) can be loaded; else what is wrong."""
    root = decoder_root(source)
    local = _is_local(source)
    if root is None:
        if local:
            return (
                f"generation.tiny_decoder: {source} has no config.json (is it an AutoencoderTiny directory?). "
                f"Fix: {_hf_fix('madebyollin/taesdxl')} (or the tiny decoder of your model's family)."
            )
        if allow_download and not _offline():
            return None
        return (
            f"generation.tiny_decoder: {source!r} is not in the Hugging Face cache"
            f"{' and HF_HUB_OFFLINE is set' if _offline() else ''}. Fix: {_hf_fix(source)}"
            f"{'' if _offline() else '; or set model.allow_download: true'}."
        )
    from .weights import component_problems

    problems = component_problems(root, Path(source).name, {None}, "a tiny decoder is loaded without a variant")
    if problems:
        return (
            f"generation.tiny_decoder: {source} cannot be loaded: {'; '.join(problems[:4])}. Fix: download it "
            f"again ({_hf_fix(source) if not local else 'hf download <id> --local-dir ' + str(root)})."
        )
    return None


def family_problems(cfg: dict, classes: list) -> list[str]:
    """What the model's family cannot do with these generation settings, checked from its configs before any
    job: an unsupported pipeline class, a resolution it does not take, class names a class-conditional model
    cannot map, a tiny decoder that does not fit its latents. A hub model not in the cache is checked when it
    loads instead."""
    g, m = cfg["generation"], cfg["model"]
    try:
        if m["tiny"] is not None:
            facts = tiny_facts(m["tiny"])
        elif m.get("fitted") is not None:
            facts = None  # the fitted stand-in (SDXL architecture): fitted_problems checks its settings
        else:
            root = model_root(m["source"], m["revision"])
            facts = model_facts(root, f"model.source {m['source']!r}") if root else None
    except UnsupportedModel as e:
        return [str(e)]
    problems, decoder = [], None
    if g["decoder"] == "tiny":
        if g["tiny_decoder"] is None and m["tiny"] is None:
            hint = BY_NAME[facts["family"]].tiny_decoders if facts else ""
            problems.append(
                "generation.decoder: tiny, but generation.tiny_decoder is not set. Fix: set it to a "
                "local AutoencoderTiny directory or hub id"
                + (f" ({hint} for this model)" if hint else "")
                + ", or generation.decoder: vae."
            )
        elif g["tiny_decoder"] is None:  # model.tiny: its own tiny_decoder/
            built = Path(tiny_model_dir(cfg))
            if built.exists() and not (built / "tiny_decoder" / "config.json").is_file():
                problems.append(
                    f"generation.decoder: tiny uses the tiny pipeline's own tiny_decoder/, which {built} "
                    f"(built by an older version) lacks. Fix: delete {built}; the next run rebuilds it."
                )
        else:
            problem = decoder_problem(g["tiny_decoder"], m["allow_download"])
            if problem:
                problems.append(problem)
            elif decoder_root(g["tiny_decoder"]) is not None:
                decoder = decoder_facts(decoder_root(g["tiny_decoder"]))
    if facts:
        problems += generation_problems(facts, g, classes, decoder)
    return problems


def sampling_problems_here(plan: Plan, sampler_running: bool | Callable[[], bool] = False) -> list[str]:
    """What keeps this machine from sampling the run when its sample jobs run here (a local executor; the
    workflow calls this where it knows, workflow/rules/common.smk): on the CPU (generation.device cpu, or auto
    with no GPU visible), float16, and a pipeline whose estimated memory (pipeline_memory) is above what the
    host has. `sampler_running`: this run's sampler is already up (its model is in memory, not to be counted
    twice); a callable is asked only when the pipeline is above what is available but within the machine's
    whole memory (finding the sampler hashes the model's files: a model no machine here could hold is refused
    without reading it). A GPU's free memory, and a SLURM job's node, are checked by the sampler when it loads."""
    g = plan.cfg["generation"]
    device = g["device"] if g["device"] != "auto" else ("cuda" if gpu_visible() else "cpu")
    if device != "cpu":
        return []
    problems = []
    if g["device"] == "auto" and g["dtype"] == "float16":  # device: cpu with float16 is refused by the config
        problems.append(
            f"{CPU_FLOAT16}, and no GPU is visible here for generation.device: auto. Fix: generation.dtype: "
            f"bfloat16 (the same memory as float16), or auto (float32), or run on a GPU node."
        )
    if not plan.cfg["limits"]["check_memory"] or sampler_running is True:
        return problems
    if plan.model_kind == "pretrained":
        root = model_root(plan.model_source, plan.cfg["model"]["revision"])
    else:
        root = Path(plan.model_source) if (Path(plan.model_source) / "model_index.json").is_file() else None
    if root is None:
        return problems  # not there yet (a model the workflow builds, a hub model to download)
    variant = "fp16" if not _is_local(plan.model_source) and g["dtype"] == "float16" else None
    problem = memory_problem(root, plan.model_source, g, "cpu", available_bytes(), variant)
    if problem and callable(sampler_running):
        whole = memory_problem(root, plan.model_source, g, "cpu", total_bytes(), variant)
        problem = None if whole is None and sampler_running() else problem
    return problems + ([problem] if problem else [])


def size_problems(classes: list, n_aug: int, image_size: int, resolution: int, limits: dict) -> list[str]:
    """Counts too large to be meant: refused before any job, with the estimated images, time and memory."""
    problems = []
    big = [c for c in classes if c.n_generated > limits["max_images_per_class"]]
    n_gen = sum(c.n_generated for c in classes)
    n_out = n_gen * (1 + n_aug)
    gib = n_out * 3 * image_size * image_size * 5 / 2**30  # float32 + uint8 copies in the package step
    # Time: a lower bound from SDXL-Turbo's FLOPs (4.2 TFLOP per 512 px image, BENCHMARKS.md) at an H100's
    # dense fp16 peak (989 TFLOP/s); real runs take several times longer.
    hours = n_gen * 4.2e12 * (resolution / 512) ** 2 / 989e12 / 3600
    estimate = (
        f"the run would generate {n_gen:,} images ({n_out:,} after augmentation), take at least "
        f"{hours:,.1f} h of H100 time with SDXL-Turbo at {resolution} px, and package {gib:,.1f} GiB "
        f"in memory"
    )
    for c in big[:5]:
        problems.append(
            f"n_generated of class {c.name!r} is {c.n_generated:,}, above limits.max_images_per_class "
            f"({limits['max_images_per_class']:,}): {estimate}. Fix: correct the count (a typo?), "
            f"or raise limits.max_images_per_class if you mean it."
        )
    if gib > limits["max_dataset_gib"]:
        problems.append(
            f"the packaged dataset would need {gib:,.1f} GiB, above limits.max_dataset_gib "
            f"({limits['max_dataset_gib']}): {estimate}. Fix: fewer images (n_generated, n_aug, "
            f"classes), or raise limits.max_dataset_gib if this machine has the memory."
        )
    return problems


def teacher_uses(cfg: dict, has_real_data: bool = True) -> list[str]:
    """What needs the teacher in this config (empty: no teacher rule runs)."""
    uses = []
    ev = cfg["evaluation"]
    if cfg["selection"]["oversample"] > 1:
        uses.append("selection.oversample > 1")
    if uses_teacher(cfg) and ev["activate"]:
        uses.append(f"evaluation.labels: {ev['labels']}")
    for name in ("kmeans_real", "rded"):  # the selection baselines pick real images with it
        if ev["activate"] and ev["baselines"][name]:
            uses.append(f"evaluation.baselines.{name}")
    fid = ev["fidelity"]
    if ev["activate"] and has_real_data and fid["activate"] and fid["features"] == "teacher":
        uses.append("evaluation.fidelity.features: teacher")
    if cfg["ablation"]["teacher"]:
        uses.append("ablation.teacher")
    for m in cfg["ablation"].get("methods") or []:  # a method's own selection (its others are the run's)
        k = (m.get("selection") or {}).get("oversample") if isinstance(m, dict) else None
        if isinstance(k, int) and k > 1:
            uses.append(f"ablation.methods {m.get('name')!r}: selection.oversample > 1")
    return uses


def teacher_problems(cfg: dict, classes: list, has_real_data: bool) -> list[str]:
    """Plan-time checks of teacher, selection, soft labels and the teacher ablation, each naming the fix."""
    from .teacher.selection import difficulty_band_ranks  # deferred: pandas, only for runs with a teacher

    problems = []
    sel, ev = cfg["selection"], cfg["evaluation"]
    if sel["oversample"] > 1 and sel["criterion"] == "none":
        problems.append(
            f"selection.oversample is {sel['oversample']} but selection.criterion is none: the extra "
            f"candidates would be sampled and thrown away. Fix: set selection.criterion (confidence, "
            f"diversity or difficulty), or selection.oversample: 1."
        )
    if sel["oversample"] == 1 and sel["criterion"] != "none":
        problems.append(
            f"selection.criterion is {sel['criterion']} but selection.oversample is 1: every candidate "
            f"is kept, nothing is selected. Fix: selection.oversample >= 2 (e.g. 5), or criterion: none."
        )
    lo, hi = sel["difficulty_band"]
    if lo >= hi:
        problems.append(f"selection.difficulty_band: low {lo} is not below high {hi}. Fix: e.g. [0.25, 0.75].")
    else:
        checks = []
        if sel["criterion"] == "difficulty" and sel["oversample"] > 1:
            checks.append(("selection.oversample", sel["oversample"]))
        if cfg["ablation"]["teacher"] and "difficulty" in cfg["ablation"]["criteria"]:
            checks.append(("ablation.oversample", cfg["ablation"]["oversample"]))
        for key, k in checks:
            for c in classes:
                try:
                    difficulty_band_ranks(c.candidates(k), c.n_generated, (lo, hi))
                except ValueError as e:
                    problems.append(f"class {c.name!r} with {key} {k}: {e}")
                    break
    k, cap = sel["oversample"], cfg["limits"]["max_images_per_class"]
    over = [c for c in classes if c.n_generated <= cap < c.candidates(k)]
    if over:
        problems.append(
            f"selection.oversample {k} x n_generated {over[0].n_generated} of class {over[0].name!r} = "
            f"{over[0].candidates(k):,} candidates to sample, above limits.max_images_per_class "
            f"({cap:,}). Fix: a smaller oversample, or raise limits.max_images_per_class if you mean it."
        )
    uses = teacher_uses(cfg, has_real_data)
    ckpt = cfg["teacher"]["checkpoint"]
    if uses and ckpt is None and not has_real_data:
        problems.append(
            f"{', '.join(uses)} needs a teacher, which is trained on the real training split, and this "
            f"dataset has none. Fix: teacher.checkpoint: <path of a state dict>, or turn those off."
        )
    if uses and ckpt is not None and not Path(ckpt).is_file():
        problems.append(
            f"teacher.checkpoint: {ckpt} is not a file, and {', '.join(uses)} needs the teacher. Fix: the path of "
            f"a state dict of teacher.model ({cfg['teacher']['model']}), or null to train the teacher."
        )
    ab = cfg["ablation"]
    if ab["teacher"]:
        if not (has_real_data and ev["activate"]):
            problems.append(
                "ablation.teacher: the teacher ablation trains on each set and tests on the real test "
                "set, so it needs real data and evaluation.activate: true. Fix: enable evaluation or "
                "set ablation.teacher: false."
            )
        if sel["oversample"] > 1 or label_regimes(cfg) != ["hard"]:
            problems.append(
                "ablation.teacher compares additions to the paper's method, so the run itself must be "
                "the paper's method. Fix: selection.oversample: 1, selection.criterion: none and "
                "evaluation.labels: hard (the ablation adds the selected and soft-label sets itself)."
            )
    return problems


def _format_prompt(template: str, fields: dict, key: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(
            [
                f"{key}: cannot fill {template!r} ({e!r}); available fields: "
                f"{', '.join('{' + k + '}' for k in sorted(fields))}"
            ]
        ) from None


def _select_classes(wanted: list, infos: list, dataset: str, problems: list[str]) -> tuple[list[int], list[str]]:
    """dataset.classes -> label indices. An entry is a label index, a class name, or (ImageNet, Tiny-ImageNet)
    a WordNet id such as n01443537, the identifier those datasets' users think in."""
    names = [c.name for c in infos]
    wnids = {c.fields["wnid"]: i for i, c in enumerate(infos) if c.fields.get("wnid")}
    by_name = {n: i for i, n in enumerate(names)}
    selected, problems = [], list(problems)
    for c in wanted:
        if isinstance(c, int) and 0 <= c < len(names):
            selected.append(c)
        elif isinstance(c, str) and c in by_name:
            selected.append(by_name[c])
        elif isinstance(c, str) and c in wnids:
            selected.append(wnids[c])
        else:
            close = difflib.get_close_matches(str(c), [*names, *wnids], n=3)
            kinds = [f"names ({', '.join(repr(n) for n in names[:3])}{', ...' if len(names) > 3 else ''})"]
            kinds.append(f"indices 0..{len(names) - 1}")
            if wnids:
                kinds.append(f"wnids ({', '.join(list(wnids)[:3])}{', ...' if len(wnids) > 3 else ''})")
            problems.append(
                f"dataset.classes: {c!r} is not a class of '{dataset}'"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + f"; valid entries are {', '.join(kinds[:-1])} or {kinds[-1]}. Fix: use one of those (the "
                f"prompt table, `snakemake prompts`, lists every class)."
            )
    if len(set(selected)) != len(selected):
        problems.append(
            "dataset.classes: a class is listed twice (perhaps once by name, index or wnid and again by "
            "another). Fix: list each class once."
        )
    return selected, problems


def build_plan(config: dict, check_model: bool = True) -> Plan:
    """Validate `config` and resolve it into a Plan. Raises ConfigError / DatasetError with a fix in the text.
    `check_model`: also check the model (Plan.model_problems); the workflow checks it later, only where it samples."""
    cfg = load_and_validate(config)
    adapter = get_adapter(cfg["dataset"])
    infos, selected = _checked_classes(cfg, adapter, check_model)
    names = [c.name for c in infos]
    classes = _class_plans(cfg, adapter, infos, selected)
    image_size = cfg["dataset"]["image_size"] or adapter.image_size
    if cfg["generation"]["resolution"] < image_size:
        raise ConfigError(
            [
                f"generation.resolution: {cfg['generation']['resolution']} is below the dataset's "
                f"image size {image_size}; images would be upsampled. Fix: resolution >= {image_size} "
                f"(SDXL-Turbo's native 512; README, Small targets)."
            ]
        )
    # evaluation.protocol: its preset under the config's explicit keys (it may depend on the data and IPC)
    resolution = cfg["evaluation"]["resolution"] or image_size
    context = Context(cfg["dataset"]["name"], resolution, nominal_ipc(cfg), len(classes))
    cfg, protocol = apply_protocol(cfg, config or {}, context)
    family = plan_family(cfg) if check_model else None
    methods = _checked_settings(cfg, adapter, classes, family, image_size, resolution, check_model)
    fingerprints = _real_fingerprints(cfg, adapter, classes, methods)
    problems = size_problems(
        classes, cfg["augmentation"]["n_aug"], image_size, cfg["generation"]["resolution"], cfg["limits"]
    )
    if problems:
        raise ConfigError(problems)
    model_dir = tiny_model_dir(cfg) or fitted_model_dir(cfg)
    return Plan(
        cfg=cfg,
        classes=classes,
        all_class_names=names,
        image_size=image_size,
        mean=adapter.mean,
        std=adapter.std,
        has_real_data=adapter.has_real_data,
        model_dir=model_dir,
        model_source=model_dir or cfg["model"]["source"],
        model_kind=model_kind(cfg),
        evaluation_protocol=protocol,
        family=family,
        real_fingerprints=fingerprints,
        method_cfgs=methods,
    )


def _checked_classes(cfg: dict, adapter, check_model: bool) -> tuple[list, list[int]]:
    """The dataset's classes and the indices of those selected (dataset.classes, else all), once its files, its
    class list, the selection, the prompt overrides and (with `check_model`) a pretrained model are found sound:
    every such problem in one ConfigError."""
    # Report a missing dataset and a missing model together: both must be fixed before any job can run.
    m = cfg["model"]
    pretrained = model_kind(cfg) == "pretrained"
    try:
        adapter.check()
    except DatasetError as e:
        problems = [str(e)]
        if pretrained:
            problems.append(
                model_problem(m["source"], m["revision"], m["allow_download"], load_variants(cfg, m["source"]))
            )
        raise ConfigError([p for p in problems if p]) from None
    infos = adapter.classes()
    names = [c.name for c in infos]
    problems = []
    if not names:
        problems.append("dataset: no classes found. Fix: check dataset.root / dataset.class_names.")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        problems.append(
            f"dataset: duplicate class names {dups[:5]}; labels would be ambiguous. "
            f"Fix: make each class name unique in the class list."
        )
    selected = list(range(len(names)))
    if cfg["dataset"]["classes"] is not None:
        selected, problems = _select_classes(cfg["dataset"]["classes"], infos, adapter.name, problems)
        selected = sorted(set(selected))
    for key in cfg["prompts"]["overrides"]:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            problems.append(
                f"prompts.overrides: {key!r} is not a class name of '{adapter.name}'"
                + (f" (did you mean {', '.join(close)}?)" if close else "")
                + ". Fix: key overrides by the dataset's class name (see prompts.csv)."
            )
    if check_model and pretrained:
        mp = model_problem(m["source"], m["revision"], m["allow_download"], load_variants(cfg, m["source"]))
        if mp:
            problems.append(mp)
    if problems:
        raise ConfigError(problems)
    return infos, selected


def _class_plans(cfg: dict, adapter, infos: list, selected: list[int]) -> list[ClassPlan]:
    """Each selected class's prompt (template or override), seed and image count."""
    template = cfg["prompts"]["template"] or adapter.default_template
    overrides = cfg["prompts"]["overrides"]
    ids = class_ids([c.name for c in infos])
    classes = []
    for i in selected:
        info, ov = infos[i], overrides.get(infos[i].name, {})
        fields = {"raw_name": info.name, "index": i, **info.fields}
        prompt = ov.get("prompt") or _format_prompt(template, fields, "prompts.template")
        classes.append(
            ClassPlan(
                index=i,
                name=info.name,
                id=ids[i],
                prompt=prompt,
                seed=int(ov.get("seed", cfg["seed"])),
                n_generated=int(ov.get("n_generated", cfg["generation"]["n_generated"])),
            )
        )
    return classes


def _checked_settings(cfg, adapter, classes, family, image_size: int, resolution: int, check_model: bool) -> dict:
    """The stages' settings checked together (the stand-in, the family, evaluation, the PDA ablation, the teacher,
    generation from real data, ablation.methods: each method's config through the same checks): every problem in
    one ConfigError. Returns the methods' configs."""
    problems = fitted_problems(cfg, image_size) + (family_problems(cfg, classes) if check_model else [])
    problems += evaluation_problems(cfg, adapter.has_real_data, resolution)
    if cfg["ablation"]["pda"] and not (adapter.has_real_data and cfg["evaluation"]["activate"]):
        problems.append(
            "ablation.pda: the PDA ablation trains on each variant and tests on the real test set, so it "
            "needs a dataset with real images and evaluation.activate: true. Fix: enable evaluation "
            "(with such a dataset) or set ablation.pda: false."
        )
    problems += teacher_problems(cfg, classes, adapter.has_real_data)
    problems += real_data_problems(cfg, family, adapter.has_real_data)
    bad_names = method_name_problems(cfg["ablation"]["methods"])
    problems += bad_names
    methods = {}
    if not bad_names:
        methods, schema_problems = method_configs(cfg)
        problems += schema_problems
        problems += method_problems(cfg, methods, classes, family, adapter.has_real_data, image_size)
    if problems:
        raise ConfigError(problems)
    return methods


def _real_fingerprints(cfg: dict, adapter, classes: list[ClassPlan], methods: dict) -> dict | None:
    """Per class, (real training images, their fingerprint) when the run or a method generates from real data
    (prototypes, real guidance), after checking each class has as many real images as prototypes; else None."""
    real = [n for n, m in methods.items() if uses_real_latents(m)]
    if not (uses_real_latents(cfg) or real):
        return None
    fingerprints = adapter.class_fingerprints([c.index for c in classes])
    who = "" if uses_real_latents(cfg) else f"ablation.methods {', '.join(map(repr, real))}: "
    problems = [
        f"{who}class {c.name!r} has {fingerprints[c.index][0]} real training images, fewer than the "
        f"{c.n_generated} prototypes (one per kept image) generation.init: prototypes / real_guidance "
        f"clusters them into. Fix: a smaller n_generated for it (prompts.overrides), or init: noise."
        for c in classes
        if fingerprints[c.index][0] < c.n_generated
    ][:5]
    if problems:
        raise ConfigError(problems)
    return fingerprints


def plan_family(cfg: dict) -> str | None:
    """The generator's family as the plan knows it: the tiny spec's, SDXL for the fitted stand-in, a local or
    cached model's from its model_index.json; None for a hub model not yet cached (its load checks it)."""
    m = cfg["model"]
    if m.get("tiny") is not None:
        return tiny_facts(m["tiny"])["family"]
    if m.get("fitted") is not None:
        return "sdxl"
    root = model_root(m["source"], m["revision"])
    try:
        return model_facts(root, f"model.source {m['source']!r}")["family"] if root else None
    except UnsupportedModel:
        return None  # family_problems names it
