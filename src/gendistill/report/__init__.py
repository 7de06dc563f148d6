"""Report helpers: plots of the evaluation, per-class sample grids, run-time summary, HTML tables."""
