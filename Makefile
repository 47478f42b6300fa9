# leadbus — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install kafka-libs lint test test-unit test-faults bench demo clean

# `pip install -e` also compiles the C extensions in place (setup.py: leadbus/audit/_picker.c, _seal_link.c with
# _sha256.h, _records.c and _rdkafka.c with _slots.h (_records.c with _publishers.h, _rdkafka.c with _rdheaders.h
# too), and _intake.c with
# _intake_run.c and _intake.h, the replay's hot path;
# deploy/install-build-deps.sh installs the compiler and the Python and OpenSSL headers where they are missing); a
# change to their sources installs again, rebuilding them.
$(STAMP): pyproject.toml setup.py leadbus/audit/_picker.c leadbus/audit/_seal_link.c leadbus/audit/_sha256.h \
		leadbus/audit/_records.c leadbus/audit/_rdkafka.c leadbus/audit/_intake.c leadbus/audit/_intake_run.c \
		leadbus/audit/_intake.h leadbus/audit/_slots.h leadbus/audit/_rdheaders.h leadbus/audit/_publishers.h
	bash deploy/install-build-deps.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The broker jars from Maven Central, and the class-data archive of them that every broker's JVM maps (a cluster
# starts ~2 s sooner: tests start some 45).
kafka-libs: $(STAMP)
	$(BIN)/leadbus broker fetch

lint: $(STAMP)
	$(BIN)/ruff check leadbus producers processors sinks tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The unit tests spread over the cores (pytest-xdist: they start no broker and share no files); the integration tests
# stay in one process, in order: their brokers are session- and module-scoped, and a worker of xdist's each would
# start its own set on a machine of two cores. Both runs report before `make test` fails on either.
test: install kafka-libs lint
	bash deploy/install-postgres.sh
	bash deploy/install-browser.sh
	$(BIN)/pytest tests/unit -m "not faults" -n auto -p no:cacheprovider --durations=10 $(PYTEST_ARGS); unit=$$?; \
	$(BIN)/pytest -m "not faults" --ignore=tests/unit -p no:cacheprovider --durations=30 $(PYTEST_ARGS); rest=$$?; \
	test $$unit -eq 0 && test $$rest -eq 0

test-unit: install lint
	$(BIN)/pytest tests/unit -n auto -p no:cacheprovider $(PYTEST_ARGS)

test-faults: install kafka-libs
	$(BIN)/pytest -m faults -p no:cacheprovider $(PYTEST_ARGS)

# Every bench of bench/ (the list is bench/run_all.py's), and bench/RESULTS.md from that one run.
bench: install kafka-libs
	$(BIN)/python bench/run_all.py

demo: install kafka-libs
	$(BIN)/leadbus demo $(if $(SECURE),--secure) $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find leadbus -name '*.so' -delete
