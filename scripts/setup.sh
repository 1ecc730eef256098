#!/usr/bin/env bash
# Installs what Ferry needs on a fresh machine, and only what is missing:
# a second run does no install work. Pinned versions throughout.
#
#   scripts/setup.sh build   what `make run` needs: the wasm32 target,
#                            wasm-bindgen, wasm-opt (scripts/site.sh builds
#                            with them; cargo-leptos is not needed)
#   scripts/setup.sh test    all of that, plus Chromium, Playwright, the
#                            third-party tus clients (tus-js-client, tuspy),
#                            and the engines of the scale-out tests: a
#                            PostgreSQL server (Debian) and an S3-compatible
#                            server (s3s-fs from crates.io, into .tools)
#   scripts/setup.sh watch   cargo-leptos, for `make watch` only
#
# Cargo tools go to cargo's usual bin folder (~/.cargo/bin); npm packages to
# node_modules folders inside the project, which git ignores.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10 # 0.3.11's locked dependencies need rustc 1.96
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_wasm_target() {
    rustup target list --installed | grep -qx wasm32-unknown-unknown && return
    step "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
}

# make test lints while it compiles (clippy-driver) and checks formatting.
ensure_rust_components() {
    local have
    have=$(rustup component list --installed)
    grep -q '^clippy' <<<"$have" && grep -q '^rustfmt' <<<"$have" && return
    step "adding the clippy and rustfmt components"
    rustup component add clippy rustfmt
}

ensure_cargo_leptos() {
    [ "$(cargo leptos --version 2>/dev/null)" = "cargo-leptos $CARGO_LEPTOS_VERSION" ] && return
    step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 12 minutes on 2 cores)"
    cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
}

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
# Installed without --locked: its lock file pins a release the registry lacks.
# Only the wasm-bindgen program, without the TLS its test runner's
# downloads use: 150 crates to compile instead of 161.
ensure_wasm_bindgen() {
    local want
    want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
    [ -n "$want" ] || { echo "no wasm-bindgen in Cargo.lock" >&2; exit 1; }
    [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $want" ] && return
    step "installing wasm-bindgen-cli $want"
    cargo install wasm-bindgen-cli --version "$want" --force --no-default-features --bin wasm-bindgen
}

# npm packages of one folder, reinstalled only when its package-lock.json changes.
ensure_npm() {
    local dir=$1 stamp sum
    stamp="$dir/node_modules/.ferry-installed"
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && return
    step "installing npm packages in $dir"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    echo "$sum" >"$stamp"
}

# A project-local Python for the tuspy interoperability tests, rebuilt only
# when tests/interop/requirements.txt changes.
ensure_venv() {
    local stamp=.venv/.ferry-installed sum
    sum=$(sha256sum tests/interop/requirements.txt | cut -d' ' -f1)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && return
    step "installing Python test clients into .venv"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
    echo "$sum" >"$stamp"
}

ensure_chromium() {
    [ -x /usr/bin/chromium ] && return
    step "installing Chromium from Debian"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
}

# The scale-out tests start their own PostgreSQL server from Debian's
# binaries (initdb into a temporary folder); nothing runs as a service.
ensure_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && return
    step "installing PostgreSQL from Debian"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
}

# An S3-compatible server for the scale-out tests and the S3 benchmark row.
# 0.14.1: later releases need rustc 1.96.
S3S_FS_VERSION=0.14.1
ensure_s3s_fs() {
    [ "$(.tools/bin/s3s-fs --version 2>/dev/null)" = "s3s-fs $S3S_FS_VERSION" ] && return
    step "installing s3s-fs $S3S_FS_VERSION into .tools (about 2 minutes)"
    cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --root .tools
}

# The tus servers the benchmark compares with: @tus/server (npm) and
# rustus (cargo, into bench/.tools, which git ignores).
ensure_bench_peers() {
    ensure_npm bench/peers
    [ "$(bench/.tools/bin/rustus --version 2>/dev/null | tr "[:upper:]" "[:lower:]")" = "rustus 0.5.10" ] && return
    step "installing rustus 0.5.10 into bench/.tools (several minutes)"
    cargo install rustus --version 0.5.10 --locked --root bench/.tools
}

case "${1:-build}" in
build)
    ensure_wasm_target
    ensure_wasm_bindgen
    ensure_npm tools
    ;;
watch)
    ensure_cargo_leptos
    ;;
test)
    ensure_rust_components
    ensure_wasm_target
    ensure_wasm_bindgen
    ensure_npm tools
    ensure_chromium
    ensure_npm end2end
    ensure_npm tests/interop
    ensure_venv
    ensure_postgres
    ensure_s3s_fs
    ;;
bench)
    ensure_bench_peers
    ensure_postgres
    ensure_s3s_fs
    # The browser scenario drives Ferry's page in Chromium with Playwright.
    ensure_chromium
    ensure_npm end2end
    ;;
*)
    echo "usage: $0 build|test|watch|bench" >&2
    exit 2
    ;;
esac
