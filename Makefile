# Fresh machine: `make demo` (install + offline demo end to end), `make test` (install + test suite),
# `make install` (only the install), `make test-fast` (the unit tier, under a minute), `make test-long` (the long
# tier, which CI runs too), `make lint` (ruff, snakefmt, snakemake --lint, the docs site built strictly), `make docs`.
# Offline compute nodes: `make wheelhouse` (README, Offline compute nodes). Every install uses the lock,
# constraints.txt (exact versions of every distribution; `make lock` rewrites it).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SLURM_STAMP := $(VENV)/.slurm-extra-stamp
CORES ?= 2
# pytest-xdist workers of `make test` (each runs its tests' workflows with --cores 2): one per core of a 2-core
# machine (3 were slower: their jobs took ~10 % more CPU time from each other than the waiting they filled)
TEST_WORKERS ?= 2

.PHONY: install docs slurm demo demo-ablation demo-teacher demo-protocols demo-methods test test-long test-fast test-slurm lint format report clean-demo \
	bench-cpu check-fullsize wheelhouse wheelhouse-no-torch lock

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev,demo,report]"
	$(BIN)/python -m compileall -q src  # every job imports gendistill: cached bytecode even under PYTHONDONTWRITEBYTECODE
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile configs/demo.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile configs/demo.yaml --report results/demo/report.html
	@PYTHONPATH=src $(BIN)/python -m gendistill.report.summary results/demo
	@echo "NOTE: the demo's generator is a STAND-IN fitted on the digits' own TRAINING split (SDXL-Turbo's classes, tiny weights), not a pretrained model: high accuracy here shows labels flow from prompt to pixels to evaluation, not what SDXL-Turbo achieves."

# The post-data-augmentation ablation on top of the demo (same run: reuses its fitted model, images and
# evaluations), then the report again with the ablation in it.
demo-ablation: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile configs/demo.yaml configs/demo_ablation.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile configs/demo.yaml configs/demo_ablation.yaml --report results/demo/report.html
	@PYTHONPATH=src $(BIN)/python -m gendistill.report.summary results/demo

# The teacher ablation (beyond the paper: candidate selection and soft labels, beside random real subsets in
# the same label regime) on top of the demo and its PDA ablation (same run: reuses the fitted model, images,
# the PDA ablation's candidate pool and the evaluations); one table, results/demo/results/teacher_ablation.csv.
demo-teacher: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --configfile configs/demo.yaml configs/demo_ablation.yaml configs/demo_teacher.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile configs/demo.yaml configs/demo_ablation.yaml configs/demo_teacher.yaml --report results/demo/report.html
	@PYTHONPATH=src $(BIN)/python -m gendistill.report.summary results/demo

# Can the evaluation tell sets apart? 10 digit classes at IPC 10 and IPC 1 under the ECCV 2024 challenge's
# protocol, in the three label regimes, each distilled set beside its random real subset, with and without training
# augmentation, 6 seeds: intervals, differences and DD-Ranking's scores (README "Evaluation protocols"; about 57
# CPU-minutes, 30-40 min on 2 idle cores). Evaluation jobs take one thread each so two run side by side. Ends with one table of both runs.
demo-protocols: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --set-threads evaluate=1 --configfile configs/demo_protocols.yaml
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --set-threads evaluate=1 --configfile configs/demo_protocols.yaml configs/demo_protocols_ipc1.yaml
	@PYTHONPATH=src $(BIN)/python -m gendistill.report.summary --compare results/demo-protocols-ipc1 results/demo-protocols-ipc10

# Which way of making a set beats random real images? 10 digit classes at IPC 10 and IPC 1, one run each: the paper's
# text-only set, D4M's prototypes (two strengths), CoDA's guidance and prototypes with the teacher's selection
# (ablation.methods: one run shares the teacher, recogniser and seeds), k-means and RDED, the random real subset and
# the full data, in hard and soft labels under the ECCV 2024 challenge's protocol, 5 seeds (README "Generation
# methods compared"; docs/methods.md). Ends with one table per IPC.
demo-methods: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --set-threads evaluate=1 --configfile configs/demo_methods.yaml
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --set-threads evaluate=1 --configfile configs/demo_methods.yaml configs/demo_methods_ipc1.yaml
	@PYTHONPATH=src $(BIN)/python -m gendistill.report.summary --methods results/demo-methods-ipc1 results/demo-methods-ipc10

# ensure_chromium.sh: headless Chromium for the report test (apt, only when missing; nothing with
# GENDISTILL_SKIP_BROWSER=1, e.g. on a login node without sudo)
test: $(STAMP)
	bash tests/ensure_chromium.sh
	$(BIN)/python -m pytest -q tests -m "not slurm and not long" -n $(TEST_WORKERS) --dist worksteal

# The long tier (marker `long`: a minute or more of CPU each: the fitted stand-in's tests, the memory
# measurement, interrupted and concurrent runs, every family end to end); CI runs it after `make test`.
test-long: $(STAMP)
	bash tests/ensure_chromium.sh
	$(BIN)/python -m pytest -q tests -m "long and not slurm" -n $(TEST_WORKERS) --dist worksteal

# The unit tier: no Snakemake run, no sampler process, no model fit (markers in pyproject.toml).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not workflow and not slow and not slurm"

# A real single-node SLURM on localhost (root; installs SLURM with apt if missing; ~4 min on 2 cores): the
# demo through profiles/slurm must equal a local run (tests/slurm/run_slurm_test.sh).
test-slurm: $(SLURM_STAMP)
	$(BIN)/python -m pytest -q -rs -s -m slurm tests/test_slurm.py

# The run through profiles/slurm, the SLURM executor plugin installed first: make slurm CONFIG=my.yaml
CONFIG ?=
slurm: $(SLURM_STAMP)
	$(BIN)/snakemake --profile profiles/slurm $(if $(CONFIG),--configfile $(CONFIG))

$(SLURM_STAMP): $(STAMP)
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev,demo,report,slurm]"
	touch $(SLURM_STAMP)

SNAKEFILES := Snakefile $(wildcard workflow/rules/*.smk)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check $(SNAKEFILES)
	$(BIN)/snakemake --lint --configfile configs/demo.yaml
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet  # into site/ (git-ignored)

# The docs site (mkdocs, material theme) into site/; docs/configuration.md is rendered from the schema first.
docs: $(STAMP)
	$(BIN)/python -m gendistill.schema_docs > docs/configuration.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Format the whole tree (ruff format, ruff check --fix, snakefmt): what `make lint` and pre-commit check.
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/snakefmt Snakefile workflow/rules/

bench-cpu: $(STAMP)
	$(BIN)/python benchmarks/bench_cpu_sampler.py

# Every supported family's full-size architecture that fits this machine's memory, with random weights, through the
# workflow on the CPU (3 classes x 2 images, a minimal evaluation): build s, load s, the sampler's peak memory beside
# the plan's estimate, s per image (BENCHMARKS.md section 9). The directories are built once into
# results/fullsize-models/ and reused. FAMILIES="sd-turbo dit-xl-2-256": only those.
FAMILIES ?=
check-fullsize: $(STAMP)
	$(BIN)/python benchmarks/check_fullsize.py $(if $(FAMILIES),--families $(FAMILIES))

# Wheels for installing on a node without internet, for one Python and platform (default: this machine's), into
# wheelhouse/py<version>[-<extras>]/: full/ (torch included) and no-torch/ (for a node with its own CUDA PyTorch).
# EXTRAS: the project's extras to include (report: the plots; demo: the digits demo), e.g. EXTRAS=report.
#   make wheelhouse-no-torch PYTHON_VERSION=3.12 PLATFORM=manylinux_2_39_x86_64   # another machine's
# NODE_HAS: what the node already has, left out of no-torch/ (default: torch torchvision numpy pillow; @FILE: a
# list); WHEELHOUSE_DIR: another folder than wheelhouse/py<version>[-<extras>].
PYTHON_VERSION ?=
PLATFORM ?=
EXTRAS ?=
NODE_HAS ?= torch torchvision numpy pillow
WHEELHOUSE_DIR ?=
WHEELHOUSE_ARGS = --python-version "$(PYTHON_VERSION)" --platform "$(PLATFORM)" --extras "$(EXTRAS)" \
	--node-has "$(NODE_HAS)" $(if $(WHEELHOUSE_DIR),--out "$(WHEELHOUSE_DIR)")
wheelhouse: $(STAMP)
	$(BIN)/python tools/wheelhouse.py build $(WHEELHOUSE_ARGS) --sets full,no-torch
wheelhouse-no-torch: $(STAMP)
	$(BIN)/python tools/wheelhouse.py build $(WHEELHOUSE_ARGS) --sets no-torch

# Re-resolve every dependency afresh (the PyTorch stack held at the lock's versions) and rewrite constraints.txt.
lock: $(STAMP)
	$(BIN)/python tools/wheelhouse.py lock

clean-demo:
	rm -rf results/demo results/models
