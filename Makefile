# Switchyard: the one entry point for humans and CI.
SHELL := /bin/bash
SWIFT ?= swift
PY ?= python3
VENV := .venv
VENV1 := $(VENV)/mcp1
VENV2 := $(VENV)/mcp2
BIN := .build/release/switchyard
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: deps build release run test unit e2e lint format bench venv clean fuzz alloc-check

# System packages (idempotent; skipped when everything is present).
APT_PKGS := libevent-dev libssl-dev pkg-config curl wrk python3 python3-venv openssl gcc libc6-dev nginx haproxy
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build -c release --product switchyard

release: build

run: build
	@echo "Switchyard: MCP endpoint http://$(HOST):$(PORT)/mcp (bundled demo server; Ctrl-C stops)"
	$(BIN) --host $(HOST) --port $(PORT)

# Python venvs for the end-to-end tests: the official SDK 1.x line (plus real children) and the 2.x line.
$(VENV1)/.ok: Tests/e2e/requirements-mcp1.txt
	$(PY) -m venv $(VENV1) && $(VENV1)/bin/pip install -q -r $< && touch $@
$(VENV2)/.ok: Tests/e2e/requirements-mcp2.txt
	$(PY) -m venv $(VENV2) && $(VENV2)/bin/pip install -q -r $< && touch $@
venv: deps $(VENV1)/.ok $(VENV2)/.ok

FUZZ_TARGETS := FuzzEnvelope FuzzHTTPInputs FuzzHTTP1 FuzzConfig
FUZZ_SECONDS ?= 60
CLANG_RT := $(shell dirname $$(dirname $$(readlink -f $$(which swift))))/lib/clang
FUZZ_FLAGS := -c release --scratch-path .build-fuzz -Xswiftc -sanitize=address \
  -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp -Xswiftc -DFUZZING \
  -Xlinker $$(ls $(CLANG_RT)/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -1) -Xlinker -lstdc++

unit: deps
	$(SWIFT) test
	@# Fuzz regression replay: every corpus input and every saved crash goes through each target.
	@for t in $(FUZZ_TARGETS); do $(SWIFT) build --product $$t >/dev/null && \
	  .build/debug/$$t Tests/Fuzz/Corpus/$$t Tests/Fuzz/FailCases/$$t || exit 1; done

# libFuzzer for FUZZ_SECONDS per target; crashes are saved under Tests/Fuzz/FailCases/<target>/ (commit them).
fuzz: deps
	@for t in $(FUZZ_TARGETS); do \
	  $(SWIFT) build $(FUZZ_FLAGS) --product $$t 2>&1 | grep -E "error|warning: unre" ; \
	  corpus=$$(mktemp -d); cp Tests/Fuzz/Corpus/$$t/* $$corpus/ 2>/dev/null; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  .build-fuzz/release/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=Tests/Fuzz/FailCases/$$t/ $$corpus 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" ; \
	  rm -rf $$corpus; done

e2e: build venv
	SWITCHYARD_BIN=$(abspath $(BIN)) MCP2_PYTHON=$(abspath $(VENV2))/bin/python \
	  $(VENV1)/bin/python -m pytest -q Tests/e2e

# Allocation regression check: mallocs per tools/call (deterministic to ±1, unlike timings). Measured 71
# at "Header names as literals"; the limit leaves room for noise, not for regressions.
ALLOC_LIMIT ?= 22
alloc-check: build
	@mkdir -p .build/perf && cc -O2 -shared -fPIC -o .build/perf/alloc_counter.so Tests/Perf/alloc_counter.c -ldl
	$(PY) Tests/Perf/alloc_check.py $(abspath $(BIN)) $(abspath .build/perf/alloc_counter.so) --max $(ALLOC_LIMIT)

test: unit e2e alloc-check

format:
	swift format --in-place --recursive Sources Tests

lint:
	@scripts/lint.sh

bench: build venv
	SWITCHYARD_BIN=$(abspath $(BIN)) Tests/Bench/run.sh

clean:
	rm -rf .build $(VENV)
