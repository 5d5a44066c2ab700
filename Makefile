# kexue-runs. `make help` lists the targets. Everything runs offline on embedded data.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
SCALE     ?= cpu
EXP       ?= fsq_vs_vq
# Where pip finds the CPU torch wheel: a local wheel folder when there is one, else PyTorch's CPU index.
WHEELS    ?= /opt/wheels
TORCH_SRC := $(if $(wildcard $(WHEELS)/torch-*.whl),--find-links $(WHEELS),--extra-index-url https://download.pytorch.org/whl/cpu)

export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.DEFAULT_GOAL := help
.PHONY: help install install-launchers install-trackers install-bench run test test-durations lint list sweep sweep-parallel figures bench clean \
	verify reproduce device-check gpu-dryrun

help: ## show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(VENV)/.installed ## create .venv with the pinned, tested versions (CPU torch, no CUDA packages)

$(VENV)/.installed: pyproject.toml scripts/requirements-cpu.lock scripts/constraints-cpu.txt
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=23" setuptools wheel
	$(PIP) install --quiet $(TORCH_SRC) -c scripts/constraints-cpu.txt -r scripts/requirements-cpu.lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PY) scripts/check_install.py
	touch $@

install-launchers: install ## add the optional Hydra launcher plugins (joblib, submitit) to .venv
	$(PIP) install -c scripts/constraints-cpu.txt -c scripts/requirements-cpu.lock "hydra-joblib-launcher==1.2.0" \
		"hydra-submitit-launcher==1.2.0" "submitit==1.5.4"

run: install ## install if needed, then run fsq_vs_vq at the default scale (cpu, ~1 min) on embedded data
	$(VENV)/bin/kexue-run experiment=fsq_vs_vq

TEST_WORKERS ?= 2
test: install ## the test suite (offline; a few minutes on 2 cores: TEST_WORKERS processes of 1 thread each)
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-durations: install ## re-measure each test file's time (tests/durations.json: longest files go to the workers first)
	$(VENV)/bin/python scripts/test_durations.py $(TEST_WORKERS)

lint: install ## ruff on the package, scripts and tests; the layer contracts (import-linter, ARCHITECTURE.md)
	$(VENV)/bin/ruff check kexue_runs scripts tests
	$(VENV)/bin/lint-imports --no-cache

list: install ## the catalog: experiments, posts, claims, last verdicts
	$(VENV)/bin/kexue-run list

sweep: install ## an experiment's canonical sweep and its verdict: make sweep EXP=fsq_vs_vq SCALE=cpu
	$(VENV)/bin/kexue-run -m experiment=$(EXP) sweep=$(EXP) scale=$(SCALE)

JOBS ?= 2
sweep-parallel: install-launchers ## the canonical sweep with JOBS parallel jobs (joblib), threads split between them
	$(VENV)/bin/kexue-run -m experiment=$(EXP) sweep=$(EXP) scale=$(SCALE) hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS)

ONLY ?=
figures: install ## publish each experiment's canonical sweep/run at SCALE: outputs/figures/{index.md,index.html} (RUN_MISSING=1 runs what is missing; ONLY="a b")
	$(PY) scripts/make_figures.py --scale $(SCALE) $(if $(ONLY),--only $(ONLY)) $(if $(RUN_MISSING),--run-missing)

verify: install ## re-run a ledger entry's command at HEAD and compare: make verify EXP=bert_init (EXP=all: every entry, resumable)
	$(VENV)/bin/kexue-run verify $(if $(filter all,$(EXP)),--all,$(EXP)) --scale $(SCALE)

reproduce: install ## regenerate the ledger at SCALE (results/SCALE/): runs what is not current, resumable (ONLY="a b")
	$(VENV)/bin/kexue-run reproduce --scale $(SCALE) $(if $(ONLY),--only $(ONLY))

bench: install ## hot loops at 1 and 2 threads (and bf16), against peers and the matmul peak; ReRoPE vs RoPE; the thread policy beside a busy loop
	$(PY) scripts/bench.py

device-check: install ## on a GPU machine (<= 9 min): smoke runs on CUDA against the CPU pins, one gpu-scale step timed per flagship -> outputs/bench/cuda-<stamp>.json
	$(PY) scripts/device_check.py

gpu-dryrun: install ## every experiment at its gpu shapes on the CPU, 2 steps a phase: params, activations, est. H100 memory and time -> outputs/bench/gpu-dryrun-<stamp>.{json,md} (ONLY="a b", BUDGET=s)
	OMP_NUM_THREADS=1 $(PY) scripts/gpu_dryrun.py $(if $(ONLY),--only $(ONLY)) $(if $(BUDGET),--budget $(BUDGET))

install-trackers: install ## add the optional trackers: logger=tensorboard, mlflow, wandb (offline)
	$(PIP) install -c scripts/constraints-cpu.txt -c scripts/requirements-cpu.lock "tensorboard>=2.15" \
		"mlflow-skinny>=2.10" "wandb>=0.16"

install-bench: install ## add the peers make bench compares against (vector-quantize-pytorch, diffusers)
	$(PIP) install -c scripts/constraints-cpu.txt -c scripts/requirements-cpu.lock "vector-quantize-pytorch>=1.20" \
		"diffusers>=0.30"

clean: ## remove the virtual environment and caches (keeps outputs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
