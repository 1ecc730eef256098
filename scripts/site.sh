#!/usr/bin/env bash
# Builds Ferry, page and server, with cargo and the wasm-bindgen CLI alone
# (no cargo-leptos: installing it took a quarter of an hour on a fresh
# machine, to run the same few steps as this script):
#
#   1. the page: the library for wasm32 with the `hydrate` feature, in
#      target/front, then wasm-bindgen into target/site/pkg/ferry.{js,wasm}
#      (and, in release, wasm-opt -O1);
#   2. its style and static files: style/main.css as pkg/ferry.css, and
#      public/ copied to the site root;
#   3. the server binary with the `ssr` feature, built at the same time as
#      the page: the page's last steps (link-time optimisation into one
#      code unit, wasm-opt) run on one core, and the server's crates use
#      the other meanwhile.
#
#   scripts/site.sh release   target/release/ferry, the site `make run` serves
#   scripts/site.sh debug     target/debug/ferry, a faster build for trying
#                             the page while developing
#
# LEPTOS_OUTPUT_NAME=ferry at compile time makes the page load pkg/ferry.wasm.
# Debug builds use `--cfg erase_components`, as `make unit` does, so that the
# tests and this server share target/debug instead of rebuilding each other.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export LEPTOS_OUTPUT_NAME=ferry

mode=${1:-release}
site=target/site
case "$mode" in
release)
    front_profile=wasm-release
    front_args=(--profile wasm-release)
    server_args=(--release)
    ;;
debug)
    export RUSTFLAGS="--cfg erase_components"
    front_profile=debug
    front_args=()
    server_args=()
    ;;
*)
    echo "usage: $0 release|debug" >&2
    exit 2
    ;;
esac

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# FERRY_LINT=1 (make test): clippy's lints, denied, while the page compiles
# (see the Makefile's LINTED), instead of a separate `cargo clippy` run.
lint=()
if [ "${FERRY_LINT:-}" = 1 ]; then
    lint=(env RUSTC_WORKSPACE_WRAPPER="${CLIPPY_DRIVER:-$(rustup which clippy-driver)}"
        CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__")
fi

# The server builds alongside the page (its own target folder, so neither
# waits for the other's lock); its output goes to the terminal as it comes.
step "server ($mode), alongside the page"
cargo build --bin ferry --no-default-features --features ssr "${server_args[@]}" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

step "page ($mode): wasm32 library"
"${lint[@]}" cargo build --lib --target-dir target/front --target wasm32-unknown-unknown \
    --no-default-features --features hydrate "${front_args[@]}"
mkdir -p "$site/pkg"
step "page ($mode): wasm-bindgen"
wasm-bindgen --target web --out-name ferry --out-dir "$site/pkg" \
    "target/front/wasm32-unknown-unknown/$front_profile/ferry.wasm"
mv -f "$site/pkg/ferry_bg.wasm" "$site/pkg/ferry.wasm"
if [ "$mode" = release ]; then
    # -O1, not -Oz: rustc has optimised the page for size already (the
    # wasm-release profile), and on it -Oz took 52-55 s of one core against
    # 12-14 s, for a module 10 % smaller but a gzipped download (what a
    # browser fetches) 9 % larger: 479 KB against 436 KB. Hashing (256 MiB,
    # hashed first or while sent) and the ten-thousand-file page ran as
    # fast or faster (bench/README.md, "The page's last optimisation").
    step "page: wasm-opt -O1"
    wasm-opt -O1 --enable-bulk-memory --enable-nontrapping-float-to-int \
        "$site/pkg/ferry.wasm" -o "$site/pkg/ferry.wasm"
fi
cp style/main.css "$site/pkg/ferry.css"
cp -R public/. "$site/"
# The code a browser downloads, also gzipped: the server sends the .gz to
# browsers that take it (Ferry's page and every page embedding its
# uploader), a third of the bytes.
for f in "$site/pkg/ferry.wasm" "$site/pkg/ferry.js" "$site/pkg/ferry.css" "$site/embed.js" "$site/hash-worker.js"; do
    gzip -9 -k -f -n "$f"
done
step "page ($mode): done; waiting for the server"
wait "$server"
trap - EXIT
step "server ($mode): done"
