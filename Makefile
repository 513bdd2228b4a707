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

.PHONY: deps build release run test unit e2e lint format bench venv clean

# System packages (idempotent; skipped when everything is present).
APT_PKGS := libevent-dev libssl-dev pkg-config curl wrk python3-venv
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

unit: deps
	$(SWIFT) test

e2e: build venv
	SWITCHYARD_BIN=$(abspath $(BIN)) MCP2_PYTHON=$(abspath $(VENV2))/bin/python \
	  $(VENV1)/bin/python -m pytest -q Tests/e2e

test: unit e2e

format:
	swift format --in-place --recursive Sources Tests

lint:
	@scripts/lint.sh

bench: build venv
	SWITCHYARD_BIN=$(abspath $(BIN)) Tests/Bench/run.sh

clean:
	rm -rf .build $(VENV)
