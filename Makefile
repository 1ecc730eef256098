# Ferry: the two commands are `make run` and `make test`. Each installs what
# is missing first (scripts/setup.sh), so both work on a fresh machine.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

# Tools the build uses (scripts/site.sh): wasm-bindgen in ~/.cargo/bin,
# wasm-opt from the binaryen npm package.
export PATH := $(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

ADDR ?= 127.0.0.1:3000
DATA_DIR ?= ./data
# Where the browser tests' server keeps its data; wiped before each run.
E2E_DATA_DIR := target/e2e-data
ABUSE_QUICK := python3 tools/abuse/abuse.py --binary target/release/ferry --quick

.PHONY: run test setup setup-test build unit lint e2e fmt watch chaos fuzz bench abuse abuse-quick

## run: install what is missing, build in release mode, serve on $(ADDR)
run: setup build
	target/release/ferry --addr $(ADDR) --data-dir $(DATA_DIR)

## test: install what is missing (Chromium too), run every test with the
## lints on, build the release that `make run` serves, and run the browser
## tests and the abuse classes against that release binary
test: setup-test
	cargo fmt --check
	$(MAKE) --no-print-directory unit
	FERRY_LINT=1 scripts/site.sh release
	@# The abuse classes mostly wait on timeouts (16 s of CPU in 47 s), so
	@# they run beside the browser tests against a server of their own;
	@# their report comes after the browser tests' own.
	@echo "==> browser tests, and beside them the abuse classes (report after)"
	@$(ABUSE_QUICK) > target/abuse-quick.log 2>&1 & abuse=$$!; \
	FERRY_DATA_DIR=$(E2E_DATA_DIR) FERRY_BIN=target/release/ferry scripts/e2e.sh; e2e=$$?; \
	wait $$abuse; abuse=$$?; cat target/abuse-quick.log; \
	[ $$e2e = 0 ] && [ $$abuse = 0 ]

setup:
	scripts/setup.sh build

setup-test:
	scripts/setup.sh test

build:
	scripts/site.sh release

# The debug server (scripts/site.sh debug) is built with these; giving
# `cargo test` the same lets both share target/debug instead of rebuilding
# each other's crates.
LEPTOS_DEBUG_ENV := RUSTFLAGS="--cfg erase_components" LEPTOS_OUTPUT_NAME=ferry

# Clippy's lints, denied, while Ferry's own crate compiles for real: what
# `cargo clippy` does through the same two variables, without compiling
# every dependency a second time in check mode (about 3 minutes on a cold
# machine). scripts/site.sh does the same for the page when FERRY_LINT=1.
export CLIPPY_DRIVER := $(shell rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
LINTED := RUSTC_WORKSPACE_WRAPPER="$(CLIPPY_DRIVER)" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

## unit: every Rust test (unit, protocol, interop, crash, hooks, scale-out),
## compiled with clippy's lints denied, run by cargo-nextest (several at once,
## each in a process of its own: .config/nextest.toml); the doc tests by cargo
unit:
	@[ -x "$(CLIPPY_DRIVER)" ] || { echo "clippy-driver not found (rustup component add clippy)" >&2; exit 1; }
	@cargo nextest --version >/dev/null 2>&1 || { echo "cargo-nextest not found (scripts/setup.sh test installs it)" >&2; exit 1; }
	$(LEPTOS_DEBUG_ENV) $(LINTED) cargo nextest run --features ssr
	$(LEPTOS_DEBUG_ENV) $(LINTED) cargo test --features ssr --doc

## bench: Ferry against the machine's limit and the tus peers (release builds)
bench: setup build
	scripts/setup.sh bench
	cargo build --release --manifest-path bench/Cargo.toml
	python3 bench/run.py

## abuse: attack the release binary by class (idle and slow requests,
## endless and truncated bodies, races, hostile metadata, fan-out,
## guessing), one line per attack; make test runs the quick version
abuse: setup build
	python3 tools/abuse/abuse.py --binary target/release/ferry

abuse-quick:
	$(ABUSE_QUICK)

## chaos: the long crash test, 50 SIGKILLs (CHAOS_KILLS to change)
CHAOS_KILLS ?= 50
chaos: setup-test
	FERRY_CHAOS_KILLS=$(CHAOS_KILLS) $(LEPTOS_DEBUG_ENV) cargo test --features ssr --test it chaos:: -- --nocapture

## fuzz: the cargo-fuzz targets, FUZZ_SECONDS each (nightly toolchain)
FUZZ_SECONDS ?= 60
fuzz:
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
	cd fuzz && for t in upload_metadata tus_headers; do \
		cargo +nightly fuzz run --fuzz-dir . $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

lint:
	cargo clippy --all-targets --features ssr -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings

## e2e: build and run the browser tests; in release by default, the binary
## and page people run (E2E_BUILD=debug builds faster while developing)
E2E_BUILD ?= release
e2e:
	scripts/site.sh $(E2E_BUILD)
	FERRY_DATA_DIR=$(E2E_DATA_DIR) FERRY_BIN=target/$(E2E_BUILD)/ferry scripts/e2e.sh

fmt:
	cargo fmt

## watch: rebuild and reload on save (development; installs cargo-leptos
## the first time, about 12 minutes)
watch: setup
	scripts/setup.sh watch
	cargo leptos watch
