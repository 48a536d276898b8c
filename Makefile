# Two entry points for a fresh machine: `make demo` (the main job on a bundled sample)
# and `make test` (everything CI runs). Both set up what they need themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := qemu-system-x86 chromium gdb gcc systemd ninja-build lttng-tools liblttng-ust-dev babeltrace2 python3-bt2

.PHONY: demo test lint typecheck system-deps venv bench clean

$(BIN)/qtrace: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,dask]'
	touch $@

venv: $(BIN)/qtrace

demo: venv
	$(BIN)/qtrace analyze samples/pc-hotplug-ts.log --html build/demo.html

# Debian packages the tests drive for real: QEMU makes fresh traces, Chromium renders pages,
# gdb reads a running QEMU (qtrace names), gcc builds a stand-in with debug info for it.
# systemd-journald captures QEMU in a real journal, ninja runs meson's real test suite,
# LTTng records a real UST trace that babeltrace2 reads back.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow setuptools' editable finder, so it checks a tree of links that has the
# installed layout (qtrace/parsers, qtrace/dashboards).
typecheck: venv
	rm -rf build/typecheck && mkdir -p build/typecheck/qtrace
	ln -s $(CURDIR)/qtrace/* build/typecheck/qtrace/
	ln -s $(CURDIR)/parsers build/typecheck/qtrace/parsers
	ln -s $(CURDIR)/dashboards build/typecheck/qtrace/dashboards
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --strict --config-file $(CURDIR)/pyproject.toml -p qtrace

test: system-deps venv
	$(BIN)/pytest

bench: venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
