"""Snakemake script for rule `results_table` (thin: the logic is gendistill.evaluation.table)."""

import json
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.evaluation.table import load_metrics, write_tables
from gendistill.logs import log_to
from gendistill.provenance import write_evaluation_provenance
from gendistill.report.runtimes import wall_seconds

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    names = {int(k): v for k, v in json.loads(sm.params.class_names).items()}
    record = json.loads(sm.params.protocol)
    summary = write_tables(
        list(sm.input.metrics),
        sm.output.table,
        sm.output.summary,
        sm.output.per_class,
        names,
        protocol=record["protocol"],
        scores=json.loads(sm.params.scores),
        full_accuracy=sm.params.full_accuracy,
        making={k: wall_seconds(v) for k, v in json.loads(sm.params.making).items()},
    )
    write_evaluation_provenance(sm.output.provenance, record, load_metrics(list(sm.input.metrics)))
    print(summary.to_string(index=False))
