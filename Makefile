# The two commands (each does all set-up on a fresh Debian machine):
#   make digits   - train the MLP and CNN on the digits data and report test accuracy
#   make test     - run the whole test suite
PY ?= python3
DEVICE ?=
APT_PKGS = mesa-vulkan-drivers libvulkan1 chromium
export XDG_RUNTIME_DIR ?= /tmp/webtensor-xdg

.PHONY: setup setup-system setup-python setup-js digits test test-py test-js bench demo

setup: setup-system setup-python setup-js

setup-system:
	@mkdir -p $(XDG_RUNTIME_DIR)
	@if ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
	  echo "installing Debian packages: $(APT_PKGS)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS)) >/dev/null; \
	fi

setup-python:
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'

setup-js:
	@npm ci --silent --no-audit --no-fund

digits: setup-system setup-python
	$(PY) -m webtensor $(if $(DEVICE),--device $(DEVICE))

test: setup
	$(PY) -m pytest -q
	npm run --silent test:js

test-py: setup-system setup-python
	$(PY) -m pytest -q

test-js: setup
	npm run --silent test:js

bench: setup
	$(PY) bench/bench_wasm.py
	$(PY) bench/bench_webgpu.py
	node bench/bench_node.mjs

demo: setup-python setup-js
	$(PY) web-demo/build.py
	$(PY) -m http.server -d web-demo 8000 --bind 127.0.0.1
