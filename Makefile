# imgfmt: every target sets up what it needs; on a fresh machine only python3 is required.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MXNET_VENV := .venv-mxnet
MXPY := $(MXNET_VENV)/bin/python
SM_VENV := .venv-sagemaker
SMPY := $(SM_VENV)/bin/python
DALI_VENV := .venv-dali
DALIPY := $(DALI_VENV)/bin/python
DEMO_DIR := demo
# make demo needs imgfmt's runtime dependencies only, not the development tools (ray, moto,
# pytest, scikit-learn, ...). It reuses .venv when that is set up (by make test, test-fast,
# lint, ...); otherwise it sets up a venv of its own, .venv-demo, with `pip install -e .`.
DEMO_OWN_VENV := .venv-demo
ifneq ($(wildcard $(VENV)/.stamp),)
DEMO_VENV := $(VENV)
else
DEMO_VENV := $(DEMO_OWN_VENV)
endif
DEMOPY := $(DEMO_VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help demo test test-fast interop lint bench fuzz hostile clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	$(PY) -m pip install -e '.[dev]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $@

# mxnet 1.9.1 (the reference) in a venv of its own: it needs numpy<1.24, and im2rec needs cv2.
$(MXNET_VENV)/.stamp:
	$(PYTHON) -m venv $(MXNET_VENV)
	$(MXPY) -m pip install "mxnet==1.9.1" "numpy<1.24" "opencv-python-headless<4.12" \
		> $(MXNET_VENV)/install.log 2>&1 || (cat $(MXNET_VENV)/install.log; exit 1)
	touch $@

# The SageMaker Python SDK (v2: sagemaker.amazon.common) for the RecordIO-protobuf interop tests.
$(SM_VENV)/.stamp:
	$(PYTHON) -m venv $(SM_VENV)
	$(SMPY) -m pip install "sagemaker<3" > $(SM_VENV)/install.log 2>&1 || (cat $(SM_VENV)/install.log; exit 1)
	touch $@

# NVIDIA DALI for the sharded RecordIO interop tests: its CPU reader needs no GPU.
$(DALI_VENV)/.stamp:
	$(PYTHON) -m venv $(DALI_VENV)
	$(DALIPY) -m pip install nvidia-dali-cuda120 numpy > $(DALI_VENV)/install.log 2>&1 || (cat $(DALI_VENV)/install.log; exit 1)
	touch $@

# The AWS CLI (v1, from PyPI) that scripts/bench_s3.py times imgfmt's S3 writes and reads against.
BENCH_S3_VENV := .venv-bench-s3
$(BENCH_S3_VENV)/.stamp:
	$(PYTHON) -m venv $(BENCH_S3_VENV)
	$(BENCH_S3_VENV)/bin/python -m pip install --quiet awscli > $(BENCH_S3_VENV)/install.log 2>&1 || (cat $(BENCH_S3_VENV)/install.log; exit 1)
	touch $@

INTEROP_ENV = IMGFMT_MXNET_PYTHON=$(abspath $(MXPY)) IMGFMT_SAGEMAKER_PYTHON=$(abspath $(SMPY)) IMGFMT_DALI_PYTHON=$(abspath $(DALIPY)) IMGFMT_REQUIRE_INTEROP=1

# The runtime dependencies as pyproject.toml lists them, and the lines of pip's output worth
# showing while .venv-demo is set up (the whole output goes to .venv-demo/install.log).
DEMO_DEPS = $(shell sed -n '/^dependencies = \[/,/^\]/s/^ *"\([A-Za-z0-9_.-]*\).*/\1/p' pyproject.toml | paste -sd, - | sed 's/,/, /g')
# (Python, not awk: mawk reads a pipe in blocks, so nothing would show until pip ended.)
DEMO_PIP_FILTER = $(PYTHON) -u -c 'import re, sys; [print("    " + re.sub(r" \(from .*\)$$", "", line.rstrip()), flush=True) \
	for line in sys.stdin if re.match(r"(Obtaining|Collecting|Processing|Building wheels|Installing collected|Successfully installed|ERROR)|  (Downloading|Installing build dependencies: started)", line)]'
ifneq ($(filter demo,$(MAKECMDGOALS)),)
DEMO_START := $(shell date +%s)
ifeq ($(DEMO_VENV),$(VENV))
ifneq ($(shell [ pyproject.toml -nt $(VENV)/.stamp ] && echo stale),)
$(info pyproject.toml changed since $(VENV) was set up: updating $(VENV) first, as make test would (pip install -e '.[dev]', log in $(VENV)/install.log)...)
endif
endif
endif

$(DEMO_OWN_VENV)/.stamp: pyproject.toml
	@echo "setting up $(DEMO_OWN_VENV) (runtime dependencies only: $(DEMO_DEPS))..."
	@start=$$(date +%s); \
	echo "  $(PYTHON) -m venv $(DEMO_OWN_VENV)"; \
	$(PYTHON) -m venv $(DEMO_OWN_VENV) || exit 1; \
	echo "  pip install -e . (full output in $(DEMO_OWN_VENV)/install.log)"; \
	( PIP_DISABLE_PIP_VERSION_CHECK=1 $(DEMO_OWN_VENV)/bin/python -m pip install --progress-bar off -e . 2>&1; \
		echo $$? > $(DEMO_OWN_VENV)/install.status ) | tee $(DEMO_OWN_VENV)/install.log | $(DEMO_PIP_FILTER); \
	status=$$(cat $(DEMO_OWN_VENV)/install.status); rm -f $(DEMO_OWN_VENV)/install.status; \
	if [ "$$status" != 0 ]; then \
		echo "pip install failed (exit status $$status); the end of $(DEMO_OWN_VENV)/install.log:"; \
		tail -20 $(DEMO_OWN_VENV)/install.log; exit 1; \
	fi; \
	echo "$(DEMO_OWN_VENV) ready in $$(( $$(date +%s) - start )) s"
	@touch $@

demo: $(DEMO_VENV)/.stamp ## Build a sample image folder and run the main flow on it end to end (runtime dependencies only)
	@echo "running the demo with $(DEMO_VENV): $(DEMOPY) scripts/demo.py $(DEMO_DIR)"
	@$(DEMOPY) scripts/demo.py $(DEMO_DIR)
	@echo; echo "make demo: done in $$(( $$(date +%s) - $(DEMO_START) )) s"

test: $(VENV)/.stamp $(MXNET_VENV)/.stamp $(SM_VENV)/.stamp $(DALI_VENV)/.stamp ## Set up and run the whole test suite (interop with mxnet, the SageMaker SDK and DALI included)
	$(INTEROP_ENV) $(PY) -m pytest -q

test-fast: $(VENV)/.stamp ## Run the suite without the interop tests (no mxnet, no SageMaker SDK, no DALI)
	$(PY) -m pytest -q -m "not interop"

interop: $(VENV)/.stamp $(MXNET_VENV)/.stamp $(SM_VENV)/.stamp $(DALI_VENV)/.stamp ## Run only the tests that run mxnet 1.9.1, the SageMaker SDK or DALI
	$(INTEROP_ENV) $(PY) -m pytest -q -m interop

lint: $(VENV)/.stamp ## ruff and mypy
	$(VENV)/bin/ruff check imgfmt tests scripts
	$(VENV)/bin/mypy imgfmt

bench: $(VENV)/.stamp $(MXNET_VENV)/.stamp $(BENCH_S3_VENV)/.stamp ## Benchmark imgfmt against im2rec.py and cat, the near-duplicate search of stats, then S3 against the AWS CLI (writes BENCHMARKS.md)
	$(PY) scripts/bench.py --mxnet-python $(abspath $(MXPY))
	$(PY) scripts/bench_neardup.py
	$(PY) scripts/bench_s3.py --aws $(abspath $(BENCH_S3_VENV))/bin/aws

FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.stamp ## Fuzz each reader with atheris for FUZZ_SECONDS (default 60) per target
	$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install --quiet atheris >> $(VENV)/install.log 2>&1
	@for target in $$($(PY) -c "import sys; sys.path.insert(0, 'fuzz'); import targets; print(' '.join(targets.TARGETS))"); do \
		echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
		mkdir -p fuzz/corpus; \
		$(PY) fuzz/run.py $$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			> fuzz/corpus/$$target.log 2>&1; status=$$?; \
		grep -E "^stat::number_of_executed_units|^==|crash-" fuzz/corpus/$$target.log; \
		[ $$status -eq 0 ] || { tail -30 fuzz/corpus/$$target.log; exit $$status; }; \
	done

HOSTILE_MUTATIONS ?= 2000
hostile: $(VENV)/.stamp ## Pack and verify a large corpus of damaged images (HOSTILE_MUTATIONS, default 2000); checks memory
	$(PY) scripts/hostile.py check --mutations $(HOSTILE_MUTATIONS)

clean: ## Remove the venvs, the demo output and caches
	rm -rf $(VENV) $(DEMO_OWN_VENV) $(MXNET_VENV) $(SM_VENV) $(DALI_VENV) $(DEMO_DIR) fuzz/corpus .pytest_cache .mypy_cache .ruff_cache .hypothesis
