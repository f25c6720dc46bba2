# Two commands set everything up on a fresh machine:
#   make serve   install (first run only) and serve the bundled default model on http://127.0.0.1:8000
#   make test    install (first run only) and run the default test suite
VENV ?= .venv
PYTHON ?= python3.11
export NO_ALBUMENTATIONS_UPDATE = 1

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[train,test]"
	# Test-only reference encoder. Its own pins (opencv<5, numpy<2.3) would replace our cv2; the brush
	# module it provides needs only numpy and Pillow, so it goes in without its dependencies.
	$(VENV)/bin/python -m pip install -q --no-deps "label-studio-sdk==2.1.2"
	touch $@

.PHONY: setup serve test test-slow bench
setup: $(VENV)/.installed

serve: setup
	$(VENV)/bin/tailor serve

test: setup chromium
	$(VENV)/bin/python -m pytest

# The batch report's test renders it in headless Chromium and fails under CI when there is none, so
# install Debian's package when it is missing and we can (root, apt-get); otherwise only say why.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -q && apt-get install -y -q --no-install-recommends chromium; } || \
	  echo "chromium not installed (needs root and apt-get): the report's browser test skips, or fails under CI"

test-slow: setup
	$(VENV)/bin/python -m pytest -m slow

bench: setup
	$(VENV)/bin/python bench/bench_serving.py
	$(VENV)/bin/python bench/bench_encoders.py
	$(VENV)/bin/python bench/bench_models.py
	$(VENV)/bin/python bench/bench_ort.py
