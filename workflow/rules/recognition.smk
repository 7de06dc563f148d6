# Class recognition: a classifier trained on the REAL training split labels every generated image; the fraction
# labelled as its prompt's class, per class and overall, is results/recognition.csv. The classifier is its own
# job (cached): editing a prompt reruns only that class's sampling and the labelling.

RECOGNITION_RECIPE = {**EVAL_RUNS.real_data_recipe(CFG), "epochs": CFG["recognition"]["epochs"]}


rule recognition_classifier:
    output:
        model=LAYOUT.recogniser,
        info=LAYOUT.recogniser_json,
    log:
        f"{OUT}/logs/recognition/classifier.log",
    benchmark:
        f"{OUT}/benchmarks/recognition/classifier.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        dataset=fixed(DATASET),
        labels=[c.index for c in PLAN.classes],
        num_classes=len(PLAN.all_class_names),
        model=CFG["recognition"]["model"],
        seed=CFG["recognition"]["seed"],
        recipe=as_json(RECOGNITION_RECIPE),
        max_test_images=CFG["evaluation"]["max_test_images"],
        device=CFG["evaluation"]["device"],
    message:
        "Training the recogniser ({params.model}) on the real training split"
    script:
        "../scripts/recognition_classifier.py"


rule recognise:
    input:
        model=rules.recognition_classifier.output.model,
        info=rules.recognition_classifier.output.info,
        generated=[LAYOUT.generated(c) for c in CLASS_IDS],
    output:
        table=report(
            LAYOUT.recognition,
            caption="../report/recognition_csv.rst",
            category="Recognition",
            subcategory="Data (CSV)",
        ),
        images=report(
            LAYOUT.results("recognition_images.csv"),
            caption="../report/recognition_images.rst",
            category="Recognition",
            subcategory="Data (CSV)",
        ),
    log:
        f"{OUT}/logs/recognition/recognise.log",
    benchmark:
        f"{OUT}/benchmarks/recognition/recognise.tsv"
    conda:
        "../../envs/evaluation.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        dataset=fixed(DATASET),
        class_names=fixed(as_json(dict(enumerate(PLAN.all_class_names)))),
        device=CFG["evaluation"]["device"],
    script:
        "../scripts/recognise.py"


rule recognition_plots:
    input:
        table=rules.recognise.output.table,
    output:
        html=report(
            LAYOUT.results("recognition.html"),
            caption="../report/recognition.rst",
            category="Recognition",
            subcategory="Per class",
        ),
        plot=report(
            LAYOUT.results("recognition.png"),
            caption="../report/recognition.rst",
            category="Recognition",
            subcategory="Per class",
        ),
    log:
        f"{OUT}/logs/recognition/plots.log",
    benchmark:
        f"{OUT}/benchmarks/recognition/plots.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
    params:
        model_kind=PLAN.model_kind,
    script:
        "../scripts/recognition_plots.py"
