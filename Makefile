# kapos: the two commands a new user needs are `make run` and `make test`.
# Every target installs what it needs into .venv/ on first use.

# the interpreter .venv/ is made from: tools/venv_python.sh says which and why
PYTHON ?= $(shell sh tools/venv_python.sh)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BOARD  ?= sim
export PYGAME_HIDE_SUPPORT_PROMPT := 1

.PHONY: run test test-future soak bench docs clean flash hil help

help:
	@echo "make run     interactive simulated terminal (board: $(BOARD))"
	@echo "make test    the whole test suite (unit, scenarios, layer check, MicroPython gate)"
	@echo "make test-future [FUTURE=+3650d]   the suite with the calendar moved (libfaketime)"
	@echo "make bench   benchmarks, figures printed"
	@echo "make soak    long randomized runs"
	@echo "make docs    regenerate the state diagram and the screenshots in docs/"
	@echo "make flash BOARD=rpi4 TARGET=pi@host [DRY_RUN=1]   deploy to a Raspberry Pi over SSH"
	@echo "make hil [BOARD=..] [HIL_TARGET=tcp://pi:7700]     scenarios through the management channel"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# MicroPython for the gate in make test: Debian's node + the pinned npm package (tools/mpy).
MPY_STAMP := $(VENV)/.micropython-installed
$(MPY_STAMP): tools/mpy/package.json tools/mpy/package-lock.json | $(STAMP)
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm; \
		else echo "MicroPython gate: node/npm missing (sudo apt-get install nodejs npm); its tests will skip"; fi; fi
	@if command -v npm >/dev/null; then \
		cd tools/mpy && npm ci --no-audit --no-fund --loglevel=error && touch ../../$(MPY_STAMP); fi

HOST_ADDR ?= 127.0.0.1:8583
WEB_ADDR  ?= 127.0.0.1:8000
DASH_ADDR ?= 127.0.0.1:8001

# The simulated terminal, authorizing against the reference host on loopback (var/host.db);
# also in a browser on http://$(WEB_ADDR)/ and the host's dashboard on http://$(DASH_ADDR)/ (docs/web.md).
# Each run keeps its own host log (var/host-TIME.log); var/host.log points at the newest.
# A port already taken stops here with one line, before anything starts or is overwritten.
MANAGE_ADDR ?= 127.0.0.1:7700
run: $(STAMP)
	@$(BIN)/python -m kapos.app.startup HOST_ADDR=$(HOST_ADDR) MANAGE_ADDR=$(MANAGE_ADDR) WEB_ADDR=$(WEB_ADDR) DASH_ADDR=$(DASH_ADDR)
	@mkdir -p var; log=host-$$(date +%Y%m%d-%H%M%S)-$$$$.log; : > var/$$log; ln -sfn $$log var/host.log
	@echo "browser: http://$(WEB_ADDR)/ (token: var/manage-token)  dashboard: http://$(DASH_ADDR)/ (first user: var/dashboard-admin.txt)"
	@$(BIN)/python -m kapos_tools.host --listen $(HOST_ADDR) --db var/host.db --velocity 10/60 --auto-enroll \
		--web $(DASH_ADDR) --web-first-user >var/host.log 2>&1 & host=$$!; \
	trap 'kill $$host 2>/dev/null; wait $$host 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 50); do grep -q "listening" var/host.log && break; sleep 0.1; done; \
	grep -q "listening" var/host.log || { cat var/host.log; exit 1; }; \
	$(BIN)/kapos websim --web $(WEB_ADDR) --host-db var/host.db --board $(BOARD) \
		--set host.mode=iso8583 --set host.address=$(HOST_ADDR) --manage $(MANAGE_ADDR)

# Scenarios through the management channel (a real terminal: HIL_TARGET=tcp://pi:7700).
HIL_TARGET ?= manage
hil: $(STAMP)
	$(BIN)/python -m pytest tests/hil --board $(BOARD) --target $(HIL_TARGET)

# Real components the tests use, from Debian's packages (faketime: the calendar tests).
DEBS_STAMP := $(VENV)/.debs-installed
$(DEBS_STAMP): tools/ensure_debs.sh | $(STAMP)
	@sh tools/ensure_debs.sh $@ faketime:faketime

# Debian's chromium for the browser tests (tests/web, Playwright drives it: no browser download).
CHROMIUM_STAMP := $(VENV)/.chromium-installed
$(CHROMIUM_STAMP): tools/ensure_debs.sh | $(STAMP)
	@sh tools/ensure_debs.sh $@ chromium:chromium

# Debian's sshd for the local SSH "Pi" (tests/rigs/sshd.py: the update and flash tests).
SSHD_STAMP := $(VENV)/.sshd-installed
$(SSHD_STAMP): tools/ensure_debs.sh | $(STAMP)
	@PATH="$$PATH:/usr/sbin" sh tools/ensure_debs.sh $@ openssh-server:sshd openssh-client:ssh

# rsync for `kapos flash` end to end against that sshd (tests/integration/test_flash_sshd.py).
RSYNC_STAMP := $(VENV)/.rsync-installed
$(RSYNC_STAMP): tools/ensure_debs.sh | $(STAMP)
	@sh tools/ensure_debs.sh $@ rsync:rsync

# PostgreSQL for the host's second ledger engine (tests/integration/host/pg_rig.py runs
# Debian's initdb/pg_ctl on a loopback port in a temp dir; make bench compares engines)
PG_STAMP := $(VENV)/.postgresql-installed
$(PG_STAMP): tools/ensure_debs.sh | $(STAMP)
	@sh tools/ensure_debs.sh $@ postgresql:pg_ctlcluster
test: $(PG_STAMP)
bench: $(PG_STAMP)

# valgrind for tools/bench/bench_host_instructions.py: the host's instructions per
# authorization, a figure that repeats on a shared machine where times do not
VALGRIND_STAMP := $(VENV)/.valgrind-installed
$(VALGRIND_STAMP): tools/ensure_debs.sh | $(STAMP)
	@sh tools/ensure_debs.sh $@ valgrind:valgrind
bench: $(VALGRIND_STAMP)

# systemd-analyze verify for the generated units (tests/integration/update/test_systemd_units.py;
# systemd is not PID 1 here: only the unit files are checked, docs/updates.md)
SYSTEMD_STAMP := $(VENV)/.systemd-installed
$(SYSTEMD_STAMP): tools/ensure_debs.sh | $(STAMP)
	@sh tools/ensure_debs.sh $@ systemd:systemd-analyze
test: $(SYSTEMD_STAMP)

# PC/SC for the chip-insert tests (tests/integration/emv): Debian's pcscd and vsmartcard's
# virtual reader driver, swig + libpcsclite-dev to build pyscard, then pyscard into .venv.
PCSC_STAMP := $(VENV)/.pcsc-installed
$(PCSC_STAMP): tools/ensure_debs.sh | $(STAMP)
	@PATH="$$PATH:/usr/sbin" sh tools/ensure_debs.sh $(VENV)/.pcsc-debs pcscd:pcscd \
		vsmartcard-vpcd:vpcd-config swig:swig libpcsclite-dev:pcsc-spy
	@if $(BIN)/python -c "import smartcard" 2>/dev/null || \
		$(BIN)/python -m pip install --quiet -e '.[pcsc]'; then touch $@; \
		else echo "pyscard could not be installed: the PC/SC tests are skipped"; fi

test: $(STAMP) $(DEBS_STAMP) $(MPY_STAMP) $(CHROMIUM_STAMP) $(SSHD_STAMP) $(RSYNC_STAMP) $(PCSC_STAMP)
	$(BIN)/python tools/check_layers.py
	$(BIN)/python tools/check_portable.py
	$(BIN)/python tools/state_diagram.py --check docs/state-machine.md
	$(BIN)/python -m pytest

# The suite with only the calendar moved (libfaketime; FUTURE='@2036-12-01 12:00:00' for a
# fixed day): monotonic clocks stay real and time.sleep() waits relatively under
# libfaketime 0.9.10, else timed waits hang or fail (tools/faketime/sitecustomize.py says why).
FUTURE ?= +3650d
test-future: $(STAMP) $(DEBS_STAMP) $(MPY_STAMP) $(CHROMIUM_STAMP) $(SSHD_STAMP) $(RSYNC_STAMP) $(PCSC_STAMP) $(PG_STAMP) $(SYSTEMD_STAMP)
	FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH=$(CURDIR)/tools/faketime$${PYTHONPATH:+:$$PYTHONPATH} \
		faketime -f '$(FUTURE)' $(BIN)/python -m pytest

soak: $(STAMP)
	KAPOS_SOAK=1 $(BIN)/python -m pytest -m soak -s

bench: $(STAMP)
	$(BIN)/python tools/bench/run.py

docs: $(STAMP)
	$(BIN)/python tools/state_diagram.py --write docs/state-machine.md
	$(BIN)/python tools/make_docs_tables.py --write
	$(BIN)/python tools/make_screenshots.py docs/img

flash: $(STAMP)
	@test -n "$(TARGET)" || { echo "usage: make flash BOARD=rpi4 TARGET=pi@host [DRY_RUN=1]"; exit 2; }
	$(BIN)/kapos flash --board $(BOARD) --target $(TARGET) $(if $(DRY_RUN),--dry-run)

clean:
	rm -rf $(VENV) build *.egg-info firmware/*.egg-info
