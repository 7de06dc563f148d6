"""Snakemake script for rule `runtimes`: per-stage run times from the run's benchmark .tsv files."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # noqa: F821 - `snakemake` is injected

from gendistill.evaluation.table import write_csv
from gendistill.logs import log_to
from gendistill.report.plots import html_table
from gendistill.report.runtimes import collect, plot, summarise

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    jobs = collect(sm.params.benchmarks)
    summary = summarise(jobs)
    write_csv(summary, sm.output.table)
    html_table(
        summary,
        sm.output.html,
        "Run time per stage (Snakemake benchmark files)",
        "total_s/mean_s/max_s: wall-clock seconds of the stage's jobs (summed / mean / slowest); "
        "cpu_time_s: CPU seconds summed; max_rss_mb: peak resident memory of any job. Jobs run in "
        "parallel, so stage totals can exceed the run's wall time. A sample job that hands work to the "
        "long-lived sampler process is timed in wall-clock seconds only.",
    )
    plot(summary, sm.output.plot)
    print(summary.to_string(index=False))
