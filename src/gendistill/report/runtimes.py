"""Per-stage run times from Snakemake benchmark files (results/<run>/benchmarks/**/*.tsv).

The stage is the first path component under benchmarks/ (`sample/000_apple.tsv` -> sample,
`evaluate/distilled/convnet/seed0.tsv` -> evaluate, `package.tsv` -> package)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["stage", "jobs", "total_s", "mean_s", "max_s", "cpu_time_s", "max_rss_mb"]


def collect(bench_root: str) -> pd.DataFrame:
    """One row per benchmark file: stage, job (path under the stage), wall seconds, cpu time, max RSS."""
    root = Path(bench_root)
    rows = []
    for p in sorted(root.rglob("*.tsv")):
        try:
            df = pd.read_csv(p, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if df.empty or "s" not in df.columns:
            continue
        rel = p.relative_to(root).with_suffix("")
        rows.append(
            {
                "stage": rel.parts[0],
                "job": "/".join(rel.parts[1:]) or rel.parts[0],
                "s": float(pd.to_numeric(df["s"], errors="coerce").mean()),
                "cpu_time": float(pd.to_numeric(df.get("cpu_time", pd.Series([0.0])), errors="coerce").mean()),
                "max_rss": float(pd.to_numeric(df.get("max_rss", pd.Series([float("nan")])), errors="coerce").max()),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "job", "s", "cpu_time", "max_rss"])


def wall_seconds(paths: list[str]) -> float:
    """The wall seconds of the jobs whose benchmark files are `paths`, summed (each file's mean over its repeats);
    NaN when one is missing or unreadable (a job whose time is not known)."""
    total = 0.0
    for p in paths:
        try:
            df = pd.read_csv(p, sep="\t")
        except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
            return float("nan")
        if df.empty or "s" not in df.columns:
            return float("nan")
        total += float(pd.to_numeric(df["s"], errors="coerce").mean())
    return total


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per stage: job count, total / mean / max wall seconds, total CPU seconds, peak RSS; slowest stage first."""
    if jobs.empty:
        return pd.DataFrame(columns=COLUMNS)
    g = jobs.groupby("stage", sort=False)
    out = g.agg(
        jobs=("s", "size"),
        total_s=("s", "sum"),
        mean_s=("s", "mean"),
        max_s=("s", "max"),
        cpu_time_s=("cpu_time", "sum"),
        max_rss_mb=("max_rss", "max"),
    ).reset_index()
    out = out.sort_values(["total_s", "stage"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return out.round({"total_s": 2, "mean_s": 3, "max_s": 2, "cpu_time_s": 2, "max_rss_mb": 1})


def plot(summary: pd.DataFrame, path: str) -> None:
    from .plots import plt, save_figure  # deferred: matplotlib is heavy; the table needs none

    s = summary.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(s), 2) + 1.2))
    ax.barh(s["stage"], s["total_s"], color="#4c72b0")
    for y, (tot, n) in enumerate(zip(s["total_s"], s["jobs"])):
        ax.text(tot, y, f" {tot:.1f} s ({n} job{'s' if n != 1 else ''})", va="center", fontsize=8)
    ax.set_xlabel("wall-clock seconds, summed over the stage's jobs (Snakemake benchmark files)")
    ax.set_xlim(0, max(float(s["total_s"].max() or 1) * 1.35, 1))
    ax.set_title("Run time per stage")
    save_figure(path, fig)
