#!/usr/bin/env bash
# Installs what Ferry needs on a fresh machine, and only what is missing:
# a second run does no install work. Pinned versions throughout.
#
#   scripts/setup.sh build   what `make run` needs: the wasm32 target,
#                            wasm-bindgen, wasm-opt (scripts/site.sh builds
#                            with them; cargo-leptos is not needed)
#   scripts/setup.sh test    all of that, plus cargo-nextest, Chromium,
#                            Playwright, the third-party tus clients
#                            (tus-js-client, tuspy), and the PostgreSQL
#                            server of the scale-out tests (Debian; their
#                            S3 server, s3s-fs, is a crate the tests
#                            compile with them)
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

# make unit runs the Rust tests with cargo-nextest. Machines of this kind
# come with it (in /usr/local/bin); elsewhere it is built once.
NEXTEST_VERSION=0.9.143
ensure_nextest() {
    cargo nextest --version >/dev/null 2>&1 && return
    step "installing cargo-nextest $NEXTEST_VERSION (several minutes)"
    cargo install cargo-nextest --version "$NEXTEST_VERSION" --locked
}

ensure_cargo_leptos() {
    [ "$(cargo leptos --version 2>/dev/null)" = "cargo-leptos $CARGO_LEPTOS_VERSION" ] && return
    step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 12 minutes on 2 cores)"
    cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
}

# The version of crate $1 in Cargo.lock (the first, should there be two).
locked_version() {
    local v
    v=$(awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
    [ -n "$v" ] || { echo "no $1 in Cargo.lock" >&2; exit 1; }
    echo "$v"
}

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
# Installed without --locked: its lock file pins a release the registry lacks.
# Only the wasm-bindgen program, without the TLS its test runner's
# downloads use: 150 crates to compile instead of 161. Built without
# optimisation (--debug): 1 min 41 s to compile instead of about 4 min, and
# it still treats the release page in 3.5 s (0.6 s optimised), into the
# same bytes.
ensure_wasm_bindgen() {
    local want
    want=$(locked_version wasm-bindgen)
    [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $want" ] && return
    step "installing wasm-bindgen-cli $want (about 2 minutes)"
    cargo install wasm-bindgen-cli --version "$want" --force --no-default-features --bin wasm-bindgen --debug
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

# Debian's packages, in one apt-get run: Chromium for the browser tests, and
# the PostgreSQL server the scale-out tests start from its binaries (initdb
# into a temporary folder; nothing runs as a service).
# (And python3-venv, which the interoperability tests' .venv needs, where
# Python lacks its venv module.)
debian_missing() {
    [ -x /usr/bin/chromium ] || echo chromium
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || echo postgresql
    python3 -m venv --help >/dev/null 2>&1 || echo python3-venv
}

ensure_debian() {
    local want
    mapfile -t want < <(debian_missing)
    [ ${#want[@]} = 0 ] && return
    step "installing ${want[*]} from Debian"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}"
}

# An S3-compatible server, s3s-fs, optimised, for the benchmark's S3 rows:
# the version the tests serve as a crate (a dev-dependency, pinned in
# Cargo.toml), so both measure against the same store.
ensure_bench_s3s_fs() {
    local want
    want=$(locked_version s3s-fs)
    [ "$(bench/.tools/bin/s3s-fs --version 2>/dev/null)" = "s3s-fs $want" ] && return
    step "installing s3s-fs $want into bench/.tools (2 to 4 minutes)"
    cargo install s3s-fs --version "$want" --features binary --locked --root bench/.tools
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
    # What comes from Debian, npm and PyPI installs in the background while
    # cargo compiles; its output is shown once both are done.
    mkdir -p target
    downloads=target/setup-downloads.log
    # sudo asks for its password now, not in the middle of cargo's output.
    if [ "$(id -u)" != 0 ] && [ -n "$(debian_missing)" ]; then sudo -v; fi
    (
        ensure_debian
        ensure_npm tools
        ensure_npm end2end
        ensure_npm tests/interop
        ensure_venv
    ) >"$downloads" 2>&1 &
    fetching=$!
    # Should a compile fail, the installs still end before this script does:
    # an apt-get cut short leaves dpkg half-done.
    trap 'wait "$fetching" || true; cat "$downloads"' EXIT
    ensure_nextest
    ensure_wasm_bindgen
    trap - EXIT
    if ! wait "$fetching"; then
        cat "$downloads" >&2
        echo "installing from Debian, npm or PyPI failed (above)" >&2
        exit 1
    fi
    cat "$downloads"
    ;;
bench)
    ensure_bench_peers
    ensure_bench_s3s_fs
    # PostgreSQL for the S3 rows; the browser scenario drives Ferry's page
    # in Chromium with Playwright.
    ensure_debian
    ensure_npm end2end
    ;;
*)
    echo "usage: $0 build|test|watch|bench" >&2
    exit 2
    ;;
esac
