# kdteach: `make lab` runs the course, `make test` checks it (what CI runs).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8888
IP     ?= 127.0.0.1
# Extra options, e.g. make lab LAB_ARGS=--no-browser, make test PYTEST_ARGS="-x tests"
LAB_ARGS ?=
PYTEST_ARGS ?=
WELCOME := notebooks/00_welcome.ipynb

PYCHECK := -c 'import sys; sys.exit(sys.version_info < (3, 10))'

.PHONY: setup venv data lab test test-fast clean distclean student book browser bench runtimes gpu-results

setup venv: $(STAMP)

# Create .venv if absent and install the course and its test tools into it (the course alone:
# pip install -e .); redone when pyproject.toml changes.
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	    $(PYTHON) $(PYCHECK) || { echo "kdteach needs Python >= 3.10 but $(PYTHON) is" \
	        "$$($(PYTHON) -V 2>&1); try: make PYTHON=python3.11" >&2; exit 1; }; \
	    $(PYTHON) -m venv $(VENV); \
	fi
	@$(PY) $(PYCHECK) || { echo "$(VENV) has $$($(PY) -V 2>&1), kdteach needs >= 3.10;" \
	    "try: make distclean && make PYTHON=python3.11" >&2; exit 1; }
	$(PY) -m pip install -e '.[test]'
	@touch $@

# Check the shipped MNIST / Fashion-MNIST files (sha256) and decompress them; check the text.
data: setup
	$(PY) -m kdteach.data
	$(PY) -m kdteach.text

# JupyterLab rooted at notebooks/, opening the welcome notebook; it prints its URL.
lab: setup data
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.ip=$(IP) \
		--ServerApp.port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) \
		$(LAB_ARGS) $(wildcard $(WELCOME))

# Everything: unit tests (tests/unit), course tests (tests/course), tool tests (tests/tools),
# then every notebook in notebooks/ through nbval. TEST_WORKERS pytest-xdist processes share
# the work, a notebook's cells staying on one (tools/nbval_wait.py); each runs torch on one
# thread, so two workers use two cores without fighting over them. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: export KDTEACH_PROFILE ?= quick
test: export MPLBACKEND = Agg
ifneq ($(filter-out 0 1,$(TEST_WORKERS)),)
test: export OMP_NUM_THREADS = 1
endif
test: setup data
	@$(MAKE) --no-print-directory browser
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS)) $(PYTEST_ARGS)

# The inner loop: the unit tests alone (one file per kdteach module), under a minute.
test-fast: export KDTEACH_PROFILE ?= quick
test-fast: export MPLBACKEND = Agg
test-fast: setup data
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# --- benchmark (python -m kdteach.bench) ---
# One epoch of KD on MNIST, a tutorial-style loop vs kdteach.train.distill; prints the table.
# Options go in BENCH_ARGS, e.g. make bench BENCH_ARGS="--device cpu --json bench.json".
BENCH_ARGS ?=
bench: setup data
	$(PY) -m kdteach.bench $(BENCH_ARGS)

# --- per-notebook runtimes (python -m tools.runtimes, maintainers' tooling) ---
# Every notebook alone, empty teacher cache then cached; prints the README's table and writes
# notebooks/results/runtimes_<profile>_<device>.json. E.g. make runtimes RUNTIMES_ARGS=03_hinton_kd
RUNTIMES_ARGS ?=
runtimes: setup data
	$(PY) -m tools.runtimes $(RUNTIMES_ARGS)

# --- every GPU-only number in the course, in one go (needs CUDA) ---
# The benchmark, Hinton's table at full scale, every notebook at the full profile (which
# also writes nb05/06/07 and the capstone's full results), and last, allowed to fail, the
# benchmark's torch.compile variant beside the CUDA-graph prototype (python -m
# tools.cuda_graphs: the benchmark plus one graphed loop). Writes notebooks/results/
# {bench_gpu,hinton_mnist_full,runtimes_full_cuda,bench_gpu_extras}.json.
gpu-results: setup data
	@$(PY) -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "make gpu-results needs a CUDA GPU (torch.cuda.is_available() is False here); on a CPU the full profile takes hours. The CPU numbers come from make bench and make runtimes.")'
	$(PY) -m kdteach.bench --json notebooks/results/bench_gpu.json
	$(PY) -m kdteach.experiments.hinton_mnist
	KDTEACH_PROFILE=full $(PY) -m tools.runtimes
	-$(PY) -m tools.cuda_graphs --compile --json notebooks/results/bench_gpu_extras.json

# --- student edition and course site (python -m tools.publish, maintainers' tooling) ---

# build/student/: every notebook without its solution cells (tagged `solution`).
student: setup
	$(PY) -m tools.publish student --out build/student

# build/site/index.html: the notebooks run (quick profile, no progress bars) and exported as
# a static site. The widget and MathJax scripts come from npm once (kept in build/vendor/);
# without npm the site is built without them. E.g. make book BOOK_ARGS="--offline 00_welcome".
BOOK_ARGS ?=
book: export KDTEACH_PROFILE ?= quick
book: setup data
	$(PY) -m tools.publish book --out build/site $(BOOK_ARGS)

# Chromium for tests/tools/test_browser.py. Installed with apt-get when root on Debian/Ubuntu;
# elsewhere the browser tests are skipped and say why.
browser:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium for the browser tests (apt-get install chromium)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	        >/dev/null 2>&1 || echo "Could not install Chromium: browser tests will be skipped" >&2; \
	else echo "No Chromium and not root: browser tests will be skipped" >&2; fi

clean:
	rm -rf build dist *.egg-info tests/artifacts .pytest_cache
	rm -f data/*/raw/*-ubyte data/*/raw/*.tmp
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) \
		-type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
