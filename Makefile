# One entry point for people and for .ci/run.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8080

.PHONY: install rabbitmq nginx deploy-tools bench demo run emulator lint fmt typecheck test-unit test-integration test check ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## the venv with the project and its dev tools

rabbitmq:  ## install (if missing) and start (if stopped) a local RabbitMQ
	./scripts/rabbitmq.sh

nginx:  ## install Debian's nginx (if missing) for the proxy tests
	./scripts/nginx.sh

deploy-tools:  ## validators for Dockerfile, Kubernetes and Prometheus files (build/deploy-tools)
	./scripts/validate_deploy.sh install

bench: install  ## measure the gateway against its physical floors (BENCH_FLAGS=--quick)
	./scripts/rabbitmq.sh --without-test-plugins
	$(BIN)/python -m scripts.bench $(BENCH_FLAGS)

demo: install rabbitmq  ## gateway on $(PORT) + an emulated printer + one label printed
	$(BIN)/python scripts/demo.py $(PORT)

run: install rabbitmq  ## just the gateway, open to any printer (development)
	$(BIN)/zebra-gateway --port $(PORT) --allow-anonymous

emulator: install  ## an emulated printer against a local gateway
	$(BIN)/zebra-printer-emulator --url ws://127.0.0.1:$(PORT)/ --serial 50J000000001

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

test-unit: install
	$(BIN)/pytest tests/unit -q

test-integration: install rabbitmq nginx
	$(BIN)/pytest tests/integration tests/component -q

test: install rabbitmq nginx deploy-tools lint typecheck  ## everything CI runs: lint, types, the whole suite
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q

check: test

ci: test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
