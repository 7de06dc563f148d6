"""The ablations beside a run, planned from its config: the PDA ablation's generated-set variants and their random
real subsets, the teacher ablation's rows, the per-class pool both sample from, what each variant's evaluation
trains on, and which of their evaluations are the run's own (reused, not run again); and the generation methods
(ablation.methods): sets made like the run's own distilled set with some generation and selection keys
overridden, each in a scope of its own (gendistill.layout.method_scope), evaluated like the distilled set.

The workflow reads these through `Plan.ablations` (workflow/rules/ablation.smk, teacher.smk, evaluate.smk);
no Snakemake here, so every count and variant is unit-tested (tests/test_plan.py). Variant dicts are the rules'
params as they are: their keys (`n_generated`: the images a variant generates per class and keeps) are rerun
triggers, so they stay as the cached runs have them.
"""

from __future__ import annotations

import copy
import difflib
import re

from ..config import ConfigError, validate_schema
from ..evaluation.runs import SETS, EvalJob, eval_runs, full_epochs, method_set, parse_key, recipe, seeds
from ..layout import method_scope

# What a generation method may set: the generation keys that decide a set's pixels without changing its size (the
# methods are compared at the run's IPC, beside its random real subset), and the selection of its candidates
METHOD_KEYS = {
    "generation": ("init", "strength", "steps", "guidance_scale", "real_guidance"),
    "selection": ("oversample", "criterion"),
}
METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def method_config(cfg: dict, method: dict) -> dict:
    """The run's config (validated, defaults filled) with `method`'s generation and selection keys in place of the
    run's, validated by the schema as the run's keys are (ConfigError with the schema's messages); no methods."""
    out = copy.deepcopy(cfg)
    for section in METHOD_KEYS:
        out[section].update(copy.deepcopy(method.get(section) or {}))
    out["ablation"] = {**out["ablation"], "methods": [], "teacher": False}
    return validate_schema(out)


def method_name_problems(methods: list[dict]) -> list[str]:
    """ablation.methods: names that are not file-safe or not unique, and keys a method cannot set, each with the fix.
    Checked before the methods' configs (method_config), whose problems name their method."""
    problems, seen = [], set()
    for i, m in enumerate(methods):
        name = m.get("name")
        where = f"ablation.methods[{i}]"
        if not isinstance(name, str) or not METHOD_NAME.fullmatch(name):
            problems.append(
                f"{where}.name: {name!r} is not a method name: it names the method's directory "
                f"(ablation/methods/<name>/) and its rows (method:<name>). Fix: letters, digits and _ . + - (starting "
                f"with a letter or digit, at most 64), e.g. prototypes_s0.1."
            )
            continue
        if name in seen:
            problems.append(f"{where}.name: {name!r} is the name of another method too. Fix: give each method its own.")
        if name in SETS:
            problems.append(
                f"{where}.name: {name!r} is the name of one of the run's own sets. Fix: another name, e.g. {name}_m."
            )
        seen.add(name)
        for section, allowed in METHOD_KEYS.items():
            for key in m.get(section) or {}:
                if key in allowed:
                    continue
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}? " if close else ""
                problems.append(
                    f"ablation.methods {name!r}: {section}.{key} is not a key a method sets ({hint}a method keeps "
                    f"the run's other keys, so every set has the run's classes, counts and IPC and is compared "
                    f"with the same random real subset). Fix: one of {', '.join(allowed)}, or set it for the run."
                )
    return problems


def method_configs(cfg: dict) -> tuple[dict, list[str]]:
    """name -> the config each method of ablation.methods generates its set with (method_config), for the methods
    whose keys the schema accepts; and the schema's problems of the others, each naming its method."""
    out, problems = {}, []
    for m in cfg["ablation"]["methods"]:
        try:
            out[m["name"]] = method_config(cfg, m)
        except ConfigError as e:
            problems += [f"ablation.methods {m['name']!r}: {p}" for p in e.problems]
    return out, problems


class Ablations:
    """The ablations of one plan (ablation.pda, ablation.teacher). `plan` is a gendistill.plan.Plan and each `c` a
    ClassPlan of it (not imported: plan.py imports this module)."""

    def __init__(self, plan):
        self.plan = plan
        self.cfg = plan.cfg
        self.layout = plan.layout

    # --- which run ---
    @property
    def pda_active(self) -> bool:
        return bool(self.cfg["ablation"]["pda"]) and self.plan.evaluation_active

    @property
    def teacher_active(self) -> bool:
        return bool(self.cfg["ablation"]["teacher"]) and self.plan.evaluation_active

    @property
    def methods_active(self) -> bool:
        return bool(self.cfg["ablation"]["methods"]) and self.plan.evaluation_active

    # --- the PDA ablation ---
    @property
    def pda_variants(self) -> list[dict]:
        """The generated-set variants, the run's own first: dicts name, n_generated, n_aug, ipc (one per name).
        Default: the run's n_generated x (1 + n_aug), the same without PDA, and as many generated images as the
        run's IPC without PDA (the paper's comparison)."""
        n, a = self.cfg["generation"]["n_generated"], self.cfg["augmentation"]["n_aug"]
        given = self.cfg["ablation"]["variants"] or [
            {"n_generated": n, "n_aug": a},
            {"n_generated": n, "n_aug": 0},
            {"n_generated": n * (1 + a), "n_aug": 0},
        ]
        out = {}
        for v in given:
            name = f"gen{v['n_generated']}_aug{v['n_aug']}"
            ipc = v["n_generated"] * (1 + v["n_aug"])
            out[name] = {"name": name, "n_generated": v["n_generated"], "n_aug": v["n_aug"], "ipc": ipc}
        return list(out.values())

    @property
    def real_variants(self) -> list[dict]:
        """A random real subset per distinct IPC of the generated variants: dicts name, ipc."""
        return [{"name": f"real_ipc{k}", "ipc": k} for k in sorted({v["ipc"] for v in self.pda_variants})]

    def pda_variant(self, name: str) -> dict:
        return next(v for v in self.pda_variants if v["name"] == name)

    def pool_size(self, c) -> int:
        """Images sampled per class for the ablations (the pool): the largest PDA variant's count and the teacher
        ablation's candidates; smaller uses take a prefix (image i has the same seed whatever the count), so the
        two ablations share one pool."""
        sizes = [v["n_generated"] for v in self.pda_variants] if self.cfg["ablation"]["pda"] else []
        if self.cfg["ablation"]["teacher"]:
            sizes.append(self.n_candidates(c))
        return max(sizes or [v["n_generated"] for v in self.pda_variants])

    # --- the teacher ablation ---
    @property
    def criteria(self) -> list[str]:
        return list(self.cfg["ablation"]["criteria"])

    def n_candidates(self, c) -> int:
        """Candidates a criterion chooses among for class `c`: the pool's first ablation.oversample x kept."""
        return c.candidates(self.cfg["ablation"]["oversample"])

    @property
    def teacher_variants(self) -> list[dict]:
        """The teacher ablation's rows: name, label, set (distilled / random_subset / full), labels (hard / soft),
        selection, data (the packaged set a distilled row trains on) and oversample."""
        base = {"selection": "none", "data": self.layout.distilled}
        rows = [{"name": "paper_hard", "label": "paper's method", "set": "distilled", "labels": "hard", **base}]
        for c in self.criteria:
            rows.append(
                {
                    "name": f"select_{c}",
                    "label": f"selection: {c}",
                    "set": "distilled",
                    "labels": "hard",
                    "selection": c,
                    "data": self.layout.teacher_ablation_set(c).distilled,
                }
            )
        rows.append({"name": "paper_soft", "label": "soft labels", "set": "distilled", "labels": "soft", **base})
        real = {"label": "random real subset", "set": "random_subset", "selection": "none", "data": None}
        rows += [
            {"name": "real_hard", **real, "labels": "hard"},
            {"name": "real_soft", **real, "labels": "soft"},
            {
                "name": "full_hard",
                "label": "full data",
                "set": "full",
                "labels": "hard",
                "selection": "none",
                "data": None,
            },
        ]
        for r in rows:
            r["oversample"] = self.cfg["ablation"]["oversample"] if r["selection"] != "none" else 1
        return rows

    def teacher_set_variant(self, criterion: str) -> dict:
        """The packaging of criterion `criterion`'s selected set (ablation_teacher_package's `variant`): every class
        keeps its n_generated (the selected directory holds exactly those)."""
        return {
            "name": f"select_{criterion}",
            "n_generated": max(c.n_generated for c in self.plan.classes),
            "n_aug": self.cfg["augmentation"]["n_aug"],
            "selection": criterion,
            "oversample": self.cfg["ablation"]["oversample"],
        }

    # --- evaluations ---
    @property
    def evaluated(self) -> list[str]:
        """Every variant name an ablation evaluation job can have (the evaluate rule's {set} in this scope)."""
        return [v["name"] for v in self.pda_variants + self.real_variants + self.teacher_variants]

    def evaluation(self, name: str) -> EvalJob:
        """How variant `name` (PDA or teacher ablation) is evaluated: the run's own recipe (the full data with
        full_epochs), hard labels unless the row says soft."""
        own = recipe(self.cfg, parse_key("distilled", self.cfg))
        if any(v["name"] == name for v in self.pda_variants):
            return EvalJob("distilled", "hard", own, data=self.layout.ablation_set(name).distilled)
        for v in self.real_variants:
            if v["name"] == name:
                return EvalJob("random_subset", "hard", own, counts={c.index: v["ipc"] for c in self.plan.classes})
        v = next((v for v in self.teacher_variants if v["name"] == name), None)
        if v is None:
            raise KeyError(f"{name!r} is not a variant of this config's ablations ({', '.join(self.evaluated)})")
        epochs = full_epochs(self.cfg) if v["set"] == "full" else own["epochs"]
        counts = self.plan.images_per_class_by_label if v["set"] == "random_subset" else None
        return EvalJob(v["set"], v["labels"], {**own, "epochs": epochs}, data=v["data"], counts=counts)

    # --- the generation methods ---
    @property
    def methods(self) -> list[dict]:
        """The generation methods of ablation.methods, in the config's order: dicts name, set (its name in the
        results, method:<name>), scope (its files' and jobs' scope), generation and selection (the keys it
        overrides, as given)."""
        return [
            {
                "name": m["name"],
                "set": method_set(m["name"]),
                "scope": method_scope(m["name"]),
                "generation": dict(m.get("generation") or {}),
                "selection": dict(m.get("selection") or {}),
            }
            for m in self.cfg["ablation"]["methods"]
        ]

    @property
    def method_scopes(self) -> dict[str, str]:
        """scope -> method name."""
        return {m["scope"]: m["name"] for m in self.methods}

    def method_of(self, scope: str) -> str | None:
        """The method whose scope `scope` is, or None (the run's own, an ablation's)."""
        return self.method_scopes.get(scope)

    def method_cfg(self, name: str) -> dict:
        """The config method `name` generates its set with (the run's, its keys overridden; method_config)."""
        return self.plan.method_cfgs[name]

    def method_candidates(self, name: str, c) -> int:
        """Images method `name`'s sample job of class `c` samples: its selection.oversample x the class's kept."""
        return c.candidates(self.method_cfg(name)["selection"]["oversample"])

    def method_selects(self, name: str) -> bool:
        return self.method_cfg(name)["selection"]["oversample"] > 1

    def method_kept(self, name: str, cid: str) -> str:
        """Where method `name`'s package reads class `cid`'s images: its kept candidates, or its samples."""
        scope = method_scope(name)
        if self.method_selects(name):
            return self.layout.scoped_selected(scope, "", cid)
        return self.layout.scoped_generated(scope, cid)

    def method_set_variant(self, name: str) -> dict:
        """The packaging of method `name`'s set (ablation_package.py's `variant`): every class keeps its kept count
        (`per_class`, by class id), each with the run's n_aug copies; what made it (its generation and selection
        as resolved) is recorded in the set's provenance."""
        mc = self.method_cfg(name)
        return {
            "name": name,
            "n_generated": max(c.n_generated for c in self.plan.classes),
            "per_class": {c.id: c.n_generated for c in self.plan.classes},
            "n_aug": self.cfg["augmentation"]["n_aug"],
            "generation": self.plan.scoped_gen_spec(method_scope(name)),
            "selection": {k: mc["selection"][k] for k in METHOD_KEYS["selection"]},
        }

    def method_evaluation(self, name: str, key: str) -> EvalJob:
        """How method `name`'s set is evaluated under the distilled set's evaluation key `key` (a regime, with or
        without augmentation): the distilled set's recipe, labels and seeds; its own set, and its own soft labels."""
        run = parse_key(key, self.cfg)
        keys = [r.key for r in eval_runs(self.cfg, self.plan.has_real_data) if r.set == "distilled"]
        if key not in keys:
            raise KeyError(f"{key!r} is not an evaluation of the distilled set in this config ({', '.join(keys)})")
        return EvalJob(method_set(name), run.labels, recipe(self.cfg, run), data=self.layout.method_set(name).distilled)

    def method_metric_rows(self) -> list[str]:
        """The evaluation JSON of every method's set, per distilled evaluation run, model and seed: results.csv's
        method rows."""
        runs = [r for r in eval_runs(self.cfg, self.plan.has_real_data) if r.set == "distilled"]
        return [
            self.layout.scoped_metrics(m["scope"], r.key, model, seed)
            for m in self.methods
            for r in runs
            for model in self.cfg["evaluation"]["models"]
            for seed in seeds(self.cfg, r)
        ]

    def _rows(self, variants: list[dict], reuse: dict) -> list[dict]:
        """One row per (variant, model, seed) with the evaluation JSON that holds it: the run's own where the
        variant equals one of the run's evaluations (`reuse`: variant -> the run's set), else the ablation's."""
        ev = self.cfg["evaluation"]
        rows = []
        for v in variants:
            for model in ev["models"]:
                for seed in ev["seeds"]:
                    run_set = reuse.get(v["name"])
                    path = (
                        self.layout.metrics(run_set, model, seed)
                        if run_set
                        else self.layout.ablation_metrics(v["name"], model, seed)
                    )
                    row = {"variant": v["name"], "model": model, "seed": seed, "path": path}
                    rows.append({**row, "reused_from_run": run_set is not None})
        return rows

    def pda_metric_rows(self) -> list[dict]:
        """The PDA table's rows. The variant equal to the run's own distilled set, and the real subset of the run's
        IPC, reuse the run's evaluation jobs (same images, same training seeds) when every class generates the
        run's n_generated."""
        n, a = self.cfg["generation"]["n_generated"], self.cfg["augmentation"]["n_aug"]
        reuse = {}
        if all(c.n_generated == n for c in self.plan.classes):
            reuse[f"gen{n}_aug{a}"] = "distilled"
            if self.cfg["evaluation"]["baselines"]["random_subset"]:
                reuse[f"real_ipc{self.plan.ipc}"] = "random_subset"
        return self._rows(self.pda_variants + self.real_variants, reuse)

    def teacher_metric_rows(self) -> list[dict]:
        """The teacher table's rows; those equal to the run's own jobs (the paper's set, hard; the random real
        subset, hard; the full data) reuse them."""
        base = self.cfg["evaluation"]["baselines"]
        reuse = {
            "paper_hard": "distilled",
            "real_hard": "random_subset" if base["random_subset"] else None,
            "full_hard": "full" if base["full"] else None,
        }
        return self._rows(self.teacher_variants, reuse)
