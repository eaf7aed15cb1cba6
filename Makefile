# The two commands (each does all set-up on a fresh Debian machine):
#   make digits   - train the MLP and CNN on the digits data and report test accuracy
#   make test     - run the whole test suite
# and an extra job:
#   make text     - train a character LSTM language model on Debian's fortunes-min, report validation perplexity
#
# Python runs in the project's virtual environment .venv, made with $(PY) (Debian's own python3 is
# "externally managed", PEP 668: pip refuses to install into it). Every recipe runs with .venv/bin
# first on PATH, so `python3`/`python` there (the JS tests' child processes too) is the venv's.
PY ?= python3
DEVICE ?=
VENV = .venv
VPY = $(VENV)/bin/python
APT_PKGS = mesa-vulkan-drivers libvulkan1 chromium python3-venv fortunes-min
export XDG_RUNTIME_DIR ?= /tmp/webtensor-xdg
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup setup-system setup-python setup-js digits text test test-py test-js bench demo

setup: setup-system setup-python setup-js

setup-system:
	@mkdir -p $(XDG_RUNTIME_DIR)
	@if ! dpkg -s $(APT_PKGS) >/dev/null 2>&1; then \
	  echo "installing Debian packages: $(APT_PKGS)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS)) >/dev/null; \
	fi

# .venv: made once with $(PY) (remade when its python no longer runs; `rm -rf .venv` to switch PY);
# the package and its test extras are installed again whenever pyproject.toml is newer than that.
setup-python: setup-system
	@if ! $(VPY) -c '' 2>/dev/null; then \
	  rm -rf $(VENV); echo "creating $(VENV) with $(PY) ($$($(PY) -c 'import sys; print(sys.executable, sys.version.split()[0])'))"; \
	  $(PY) -m venv $(VENV) || { rm -rf $(VENV); echo "$(PY) -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }; \
	fi
	@if [ ! -f $(VENV)/.installed ] || [ pyproject.toml -nt $(VENV)/.installed ]; then \
	  echo "installing webtensor[test] into $(VENV)"; \
	  $(VPY) -m pip install -q --disable-pip-version-check -e '.[test]' && touch $(VENV)/.installed; \
	fi

setup-js:
	@npm ci --silent --no-audit --no-fund

digits: setup-python
	$(VPY) -m webtensor $(if $(DEVICE),--device $(DEVICE))

text: setup-python
	$(VPY) -m webtensor text $(if $(DEVICE),--device $(DEVICE))

test: setup
	$(VPY) -m pytest -q
	npm run --silent test:js

test-py: setup-python
	$(VPY) -m pytest -q

test-js: setup
	npm run --silent test:js

bench: setup
	$(VPY) bench/bench_wasm.py
	$(VPY) bench/bench_webgpu.py
	node bench/bench_node.mjs
	node bench/bench_rnn.mjs
	node bench/bench_webgpu_peers.mjs

demo: setup-python setup-js
	$(VPY) web-demo/build.py
	$(VPY) web-demo/serve.py --dir web-demo --port 8000
