# Evaluation: each (evaluation run, model, training seed) is its own job, so adding a seed or a model reruns
# only that job. A run (gendistill.evaluation.runs, the {set} wildcard) is a set (the distilled set, a seeded
# random real subset of the same IPC, the full real set) in one label regime, with or without training
# augmentation; its recipe is the config's evaluation keys with evaluation.protocol's preset under them.
# The same rule evaluates the ablations' variants ({scope} ablation/, {set} the variant's name: ablation/eval/) and
# the generation methods' sets ({scope} ablation/methods/<name>/, {set} the distilled set's evaluation keys): what
# a job trains on and how is the plan's (Plan.evaluation: a gendistill.evaluation.runs.EvalJob).
# With evaluation.processes N a job trains on N processes (torchrun) and, where it trains on GPUs, asks for N:
# `gpu` here (counted against --resources gpu), `--gres=gpu:N` through a cluster executor (SLURM), where the
# profile's per-submission `gpu` limit is sampling's. Run here, it trains on N GPU slots of generation.gpus that it
# holds alone, the sample jobs' slots (the script takes them: gendistill.evaluation.gpus).

DATASET = as_json(CFG["dataset"])


# the KD loss keys of the soft regime, and of the kd regime (with evaluation.kd.cache: the cache's keys too)
KD_SOFT = as_json(EVAL_RUNS.kd_settings(CFG, "soft"))
KD_KD = as_json(EVAL_RUNS.kd_settings(CFG, "kd"))
EVAL_PROCESSES = int(CFG["evaluation"]["processes"])


rule evaluate:
    input:
        data=evaluation_data,
        # soft labels: the package's sidecar for a generated set, the teacher itself for a real set
        soft_labels=lambda w: PLAN.soft_labels_file(PLAN.evaluation(w.scope, w.set)) or [],
        # the teacher: run online (kd), or labelling a real set's images once (soft)
        teacher=lambda w: (
            LAYOUT.teacher
            if PLAN.evaluation(w.scope, w.set).reads_teacher and not PLAN.kd_cache(w.scope, w.set, w.seed)
            else []
        ),
        # labels kd with evaluation.kd.cache: the teacher's outputs, stored once for every seed (rule kd_cache)
        kd_cache=lambda w: PLAN.kd_cache(w.scope, w.set, w.seed) or [],
    output:
        metrics=LAYOUT.scoped_metrics(),
    log:
        f"{OUT}/logs/{{scope}}evaluate/{{set}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/{{scope}}evaluate/{{set}}/{{model}}/seed{{seed}}.tsv"
    wildcard_constraints:
        scope=scopes(ABLATION),
        # the run's evaluation keys (a generation method's too), or (scope ablation/) the ablations' variant names
        set="|".join([EVAL_RUNS.KEY_PATTERN, *PLAN.ablations.evaluated]),
    conda:
        "../../envs/evaluation.yaml"
    threads: 2 * EVAL_PROCESSES
    resources:
        **eval_resources(),
        mem_mb=8000 * EVAL_PROCESSES,
        runtime=120,
    params:
        set_name=lambda w: PLAN.evaluation(w.scope, w.set).set,
        label_regime=lambda w: PLAN.evaluation(w.scope, w.set).labels,
        kd=lambda w: {"hard": "", "soft": KD_SOFT, "kd": KD_KD}[PLAN.evaluation(w.scope, w.set).labels],
        recipe=lambda w: as_json(PLAN.evaluation(w.scope, w.set).recipe),
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        # label -> images of a random real subset (its set's images per class), else none
        per_class_counts=lambda w: (
            as_json(PLAN.evaluation(w.scope, w.set).counts) if PLAN.evaluation(w.scope, w.set).counts else ""
        ),
        num_classes=len(PLAN.all_class_names),
        max_test_images=CFG["evaluation"]["max_test_images"],
        resolution=CFG["evaluation"]["resolution"],
        device=CFG["evaluation"]["device"],
    message:
        "Training {wildcards.model} (seed {wildcards.seed}) on {wildcards.scope}{wildcards.set}"
    script:
        "../scripts/evaluate.py"


# Labels kd with evaluation.kd.cache: the teacher's outputs for every batch of every epoch of an evaluation run,
# drawn from evaluation.kd.cache_seed and stored once (gendistill.evaluation.kd_cache); every training seed of
# the run reads them ({images}: "set" for a packaged set, "subset<seed>" for a random real subset's images). The
# run's evaluations and ({scope} ablation/methods/<name>/) a generation method's.
rule kd_cache:
    input:
        data=lambda w: PLAN.kd_cache_job(w.scope, w.set, w.images)[0].data or [],
        teacher=LAYOUT.teacher,
    output:
        cache=LAYOUT.scoped_kd_cache(),
        record=LAYOUT.scoped_kd_cache_record(),
    log:
        f"{OUT}/logs/{{scope}}kd_cache/{{set}}/{{images}}.log",
    benchmark:
        f"{OUT}/benchmarks/{{scope}}kd_cache/{{set}}/{{images}}.tsv"
    wildcard_constraints:
        scope=scopes(),
        images=r"set|subset\d+",
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        **eval_resources(cap=1),
        mem_mb=8000,
        runtime=120,
    params:
        set_name=lambda w: PLAN.kd_cache_job(w.scope, w.set, w.images)[0].set,
        subset_seed=lambda w: PLAN.kd_cache_job(w.scope, w.set, w.images)[1],
        recipe=lambda w: as_json(PLAN.kd_cache_job(w.scope, w.set, w.images)[0].recipe),
        kd=KD_KD,
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        per_class_counts=lambda w: as_json(PLAN.kd_cache_job(w.scope, w.set, w.images)[0].counts or {}),
        num_classes=len(PLAN.all_class_names),
        resolution=CFG["evaluation"]["resolution"],
        device=CFG["evaluation"]["device"],
    message:
        "Storing the teacher's outputs for {wildcards.set} ({wildcards.images})"
    script:
        "../scripts/kd_cache.py"


rule results_table:
    input:
        metrics=lambda w: PLAN.run_metrics(),
    output:
        table=report(
            LAYOUT.results("results.csv"),
            caption="../report/results_table.rst",
            category="Evaluation",
            subcategory="Data (CSV)",
        ),
        summary=report(
            LAYOUT.summary,
            caption="../report/summary.rst",
            category="Evaluation",
            subcategory="Data (CSV)",
        ),
        per_class=report(
            LAYOUT.results("per_class.csv"),
            caption="../report/per_class_csv.rst",
            category="Evaluation",
            subcategory="Data (CSV)",
        ),
        provenance=LAYOUT.evaluation_provenance,
    log:
        f"{OUT}/logs/results_table.log",
    benchmark:
        f"{OUT}/benchmarks/results_table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        class_names=fixed(as_json(dict(enumerate(PLAN.all_class_names)))),
        # the protocol (its sources, notes, the keys the config overrode) and every run's resolved recipe
        protocol=fixed(as_json(PLAN.evaluation_record)),
        scores=fixed(as_json(CFG["evaluation"]["scores"])),
        # acc(real, hard) for HLR when given instead of the full-data run
        full_accuracy=CFG["evaluation"]["baselines"]["full_accuracy"],
        # per set, the benchmark files of the jobs that make it: their wall seconds summed (make_wall_seconds)
        making=fixed(as_json(PLAN.making_benchmarks())),
    script:
        "../scripts/results_table.py"


rule evaluation_plots:
    input:
        summary=rules.results_table.output.summary,
        per_class=rules.results_table.output.per_class,
    output:
        accuracy=report(
            LAYOUT.results("accuracy.png"),
            caption="../report/accuracy.rst",
            category="Evaluation",
            subcategory="Accuracy",
        ),
        table=report(
            LAYOUT.results("results.html"),
            caption="../report/results_html.rst",
            category="Evaluation",
            subcategory="Accuracy",
        ),
        per_class=report(
            LAYOUT.results("per_class.png"),
            caption="../report/per_class.rst",
            category="Evaluation",
            subcategory="Per class",
        ),
        per_class_table=report(
            LAYOUT.results("per_class.html"),
            caption="../report/per_class_csv.rst",
            category="Evaluation",
            subcategory="Per class",
        ),
    log:
        f"{OUT}/logs/evaluation_plots.log",
    benchmark:
        f"{OUT}/benchmarks/report/evaluation_plots.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        run=fixed(CFG["run"]),
    script:
        "../scripts/evaluation_plots.py"
