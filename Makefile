# logriver's entry points. `make up` and `make test` are the two commands in the README.
# uv is pinned and installed on first use; everything else is installed by devstack
# into ~/.cache/logriver (outside the checkout), so the second run is fast.
UV_VERSION := 0.13.9
UV := python3 -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: bootstrap up down status test lint unit bench

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on the CI machines), Python
# never caches the bytecode it compiles on import, so every service process compiled its
# dependencies again: 3.9-4.7 s of CPU to import three services' apps, 1.6-1.8 s with the
# bytecode written here once (11 s; under a second on the next sync). The writer's
# integration tests, which start a writer process per test: 178 -> 152 s.
bootstrap:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet --compile-bytecode

## Install everything, start Kafka, MongoDB rs0, Redis, PostgreSQL, Jaeger and all five services.
up: bootstrap
	@$(UV) run --frozen devstack up

down: bootstrap
	@$(UV) run --frozen devstack down

status: bootstrap
	@$(UV) run --frozen devstack status

lint: bootstrap
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

## The test command: lint, then unit, integration and e2e tests against the real local stack.
test: lint
	@$(UV) run --frozen devstack up
	$(UV) run --frozen pytest tests

unit: bootstrap
	$(UV) run --frozen pytest tests/unit

## Every benchmark, one after the other; writes docs/benchmarks.md (BENCH_ARGS=--quick for a short run).
bench: bootstrap
	@$(UV) run --frozen devstack up --no-services
	$(UV) run --frozen python -m bench.run_all $(BENCH_ARGS)
