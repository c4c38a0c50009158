#!/usr/bin/env bash
# The project's test command: installs what it needs on a fresh machine, then runs every check.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds live outside the clone so CI's fresh clones reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq openssl
fi
openssl version
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi
for c in rustfmt clippy; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --all-targets -- -D warnings

step "core for wasm32-unknown-unknown"
cargo build --lib --release --target wasm32-unknown-unknown
cargo clippy --lib --target wasm32-unknown-unknown --features js -- -D warnings

step "tests (unit, openssl, rustls mTLS, hostile input)"
cargo test --all-targets

step "npm package (wasm-bindgen, wasm-opt) and Node tests"
bash scripts/build-pkg.sh
node --test tests/node/

step "owner page in Chromium (playwright-core)"
node --test tests/browser/

step "benchmarks compile"
cargo bench --no-run
