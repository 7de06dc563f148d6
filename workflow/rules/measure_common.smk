# Helpers for the measurement rules (recognition.smk, ablation.smk): which of them run and what they add to the
# final outputs. Functions only (functions next to rules trip the linter), like common.smk.


def recognition_active():
    return CFG["recognition"]["activate"] and PLAN.has_real_data


def ablation_active():
    return CFG["ablation"]["pda"] and evaluation_active()


def ablation_variants():
    """The PDA ablation's generated-set variants, the run's own first: dicts name, n_generated, n_aug, ipc."""
    n, a = CFG["generation"]["n_generated"], CFG["augmentation"]["n_aug"]
    given = CFG["ablation"]["variants"] or [
        {"n_generated": n, "n_aug": a},
        {"n_generated": n, "n_aug": 0},
        {"n_generated": n * (1 + a), "n_aug": 0},
    ]
    out = {}
    for v in given:
        name = f"gen{v['n_generated']}_aug{v['n_aug']}"
        out[name] = {
            "name": name,
            "n_generated": v["n_generated"],
            "n_aug": v["n_aug"],
            "ipc": v["n_generated"] * (1 + v["n_aug"]),
        }
    return list(out.values())


def ablation_real_variants():
    """A random real subset per distinct IPC of the generated variants: dicts name, ipc."""
    ipcs = sorted({v["ipc"] for v in ablation_variants()})
    return [{"name": f"real_ipc{k}", "ipc": k} for k in ipcs]


def ablation_pool_size(c=None):
    """Images generated per class (class plan `c`) for the ablations: the largest PDA variant's count and the
    teacher ablation's candidates (ablation.oversample x n_generated); smaller uses take a prefix (image i has the
    same seed whatever the count), so the two ablations share one pool."""
    sizes = [v["n_generated"] for v in ablation_variants()] if CFG["ablation"]["pda"] else []
    if CFG["ablation"]["teacher"]:
        sizes.append(CFG["ablation"]["oversample"] * (c.n_generated if c else CFG["generation"]["n_generated"]))
    return max(sizes or [v["n_generated"] for v in ablation_variants()])


TEACHER_CRITERIA = list(CFG["ablation"]["criteria"])


def teacher_ablation_active():
    return CFG["ablation"]["teacher"] and evaluation_active()


def teacher_ablation_variants():
    """The teacher ablation's rows: name, label, set (distilled / random_subset / full), labels (hard / soft),
    selection, and data (the packaged set a distilled row trains on)."""
    base = {"selection": "none", "data": LAYOUT.distilled}
    rows = [{"name": "paper_hard", "label": "paper's method", "set": "distilled", "labels": "hard", **base}]
    for c in TEACHER_CRITERIA:
        rows.append(
            {
                "name": f"select_{c}",
                "label": f"selection: {c}",
                "set": "distilled",
                "labels": "hard",
                "selection": c,
                "data": LAYOUT.teacher_ablation_set(c).distilled,
            }
        )
    rows.append({"name": "paper_soft", "label": "soft labels", "set": "distilled", "labels": "soft", **base})
    rows += [
        {
            "name": "real_hard",
            "label": "random real subset",
            "set": "random_subset",
            "labels": "hard",
            "selection": "none",
            "data": None,
        },
        {
            "name": "real_soft",
            "label": "random real subset",
            "set": "random_subset",
            "labels": "soft",
            "selection": "none",
            "data": None,
        },
        {"name": "full_hard", "label": "full data", "set": "full", "labels": "hard", "selection": "none", "data": None},
    ]
    for r in rows:
        r["oversample"] = CFG["ablation"]["oversample"] if r["selection"] != "none" else 1
    return rows


def ablation_eval_spec(name):
    """How ablation_evaluate trains variant `name` (PDA or teacher ablation): set, labels, data, counts."""
    counts_run = {c.index: c.n_generated * (1 + CFG["augmentation"]["n_aug"]) for c in PLAN.classes}
    for v in ablation_variants():
        if v["name"] == name:
            return {
                "set": "distilled",
                "labels": "hard",
                "data": LAYOUT.ablation_set(name).distilled,
                "counts": None,
            }
    for v in ablation_real_variants():
        if v["name"] == name:
            return {
                "set": "random_subset",
                "labels": "hard",
                "data": None,
                "counts": {c.index: v["ipc"] for c in PLAN.classes},
            }
    v = next(v for v in teacher_ablation_variants() if v["name"] == name)
    return {
        "set": v["set"],
        "labels": v["labels"],
        "data": v["data"],
        "counts": counts_run if v["set"] == "random_subset" else None,
    }


def teacher_ablation_metric_rows():
    """One row per (variant, model, seed) of the teacher ablation with its evaluation JSON; the rows equal to the
    run's own jobs (the paper's set, hard; the random real subset, hard; the full data) reuse them."""
    base = CFG["evaluation"]["baselines"]
    reuse = {
        "paper_hard": "distilled",
        "real_hard": "random_subset" if base["random_subset"] else None,
        "full_hard": "full" if base["full"] else None,
    }
    rows = []
    for v in teacher_ablation_variants():
        for model in CFG["evaluation"]["models"]:
            for seed in CFG["evaluation"]["seeds"]:
                run_set = reuse.get(v["name"])
                path = (
                    LAYOUT.metrics(run_set, model, seed) if run_set else LAYOUT.ablation_metrics(v["name"], model, seed)
                )
                rows.append(
                    {
                        "variant": v["name"],
                        "model": model,
                        "seed": seed,
                        "path": path,
                        "reused_from_run": run_set is not None,
                    }
                )
    return rows


def teacher_ablation_metrics(wildcards=None):
    return [r["path"] for r in teacher_ablation_metric_rows()]


def _uniform_counts():
    """True when every class generates the run's n_generated (no per-class n_generated override)."""
    return all(c.n_generated == CFG["generation"]["n_generated"] for c in PLAN.classes)


def ablation_metric_rows():
    """One row per (variant, model, seed) of the ablation table with the evaluation JSON that holds it. The
    variant equal to the run's own distilled set, and the real subset of the run's IPC, reuse the run's
    evaluation jobs (same images, same training seeds)."""
    main = f"gen{CFG['generation']['n_generated']}_aug{CFG['augmentation']['n_aug']}"
    main_ipc = CFG["generation"]["n_generated"] * (1 + CFG["augmentation"]["n_aug"])
    reuse = {}  # variant -> the run's evaluation set it equals
    if _uniform_counts():
        reuse[main] = "distilled"
        if CFG["evaluation"]["baselines"]["random_subset"]:
            reuse[f"real_ipc{main_ipc}"] = "random_subset"
    rows = []
    for v in ablation_variants() + ablation_real_variants():
        for model in CFG["evaluation"]["models"]:
            for seed in CFG["evaluation"]["seeds"]:
                run_set = reuse.get(v["name"])
                path = (
                    LAYOUT.metrics(run_set, model, seed) if run_set else LAYOUT.ablation_metrics(v["name"], model, seed)
                )
                rows.append(
                    {
                        "variant": v["name"],
                        "model": model,
                        "seed": seed,
                        "path": path,
                        "reused_from_run": run_set is not None,
                    }
                )
    return rows


def ablation_metrics(wildcards=None):
    return [r["path"] for r in ablation_metric_rows()]


def measure_outputs():
    """Final outputs (and report items) of the recognition and ablation rules, when active."""
    out = []
    if recognition_active():
        out += [*rules.recognise.output, *rules.recognition_plots.output]
    if ablation_active():
        out += list(rules.ablation_table.output)
    if teacher_ablation_active():
        out += list(rules.teacher_ablation_table.output)
    return out
