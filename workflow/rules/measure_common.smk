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


def ablation_pool_size():
    """Images generated per class for the ablation: the largest variant's count (smaller ones use a prefix)."""
    return max(v["n_generated"] for v in ablation_variants())


def _uniform_counts():
    """True when every class generates the run's n_generated (no per-class n_generated override)."""
    return all(c.n_generated == CFG["generation"]["n_generated"] for c in PLAN.classes)


def ablation_metric_rows():
    """One row per (variant, model, seed) of the ablation table with the evaluation JSON that holds it. The
    variant equal to the run's own distilled set, and the real subset of the run's IPC, reuse the run's
    evaluation jobs (same images, same training seeds)."""
    main = f"gen{CFG['generation']['n_generated']}_aug{CFG['augmentation']['n_aug']}"
    main_ipc = CFG["generation"]["n_generated"] * (1 + CFG["augmentation"]["n_aug"])
    reuse = _uniform_counts()
    rows = []
    for v in ablation_variants() + ablation_real_variants():
        for model in CFG["evaluation"]["models"]:
            for seed in CFG["evaluation"]["seeds"]:
                path = f"{OUT}/ablation/eval/{v['name']}/{model}/seed{seed}.json"
                if reuse and v["name"] == main:
                    path = LAYOUT.metrics("distilled", model, seed)
                elif reuse and v["name"] == f"real_ipc{main_ipc}" and CFG["evaluation"]["baselines"]["random_subset"]:
                    path = LAYOUT.metrics("random_subset", model, seed)
                rows.append(
                    {
                        "variant": v["name"],
                        "model": model,
                        "seed": seed,
                        "path": path,
                        "reused_from_run": not path.startswith(f"{OUT}/ablation/"),
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
    return out
