#!/usr/bin/env bash
# The project's test command: installs what it needs on a fresh machine, then runs every check.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds live outside the clone so CI's fresh clones reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
# No incremental caches: CI builds each crate once per change, and they grew the shared target
# dir by gigabytes per run.
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log=$(mktemp)
# Each service is stopped only if it was started (its variable set); one failing stop does not
# keep the other running.
cleanup() {
  rm -f "$log"
  if [ -n "${WASM_PKI_PG_DIR:-}" ]; then bash scripts/pg.sh stop "$WASM_PKI_PG_DIR" || true; fi
  if [ -n "${WASM_PKI_DNS_DIR:-}" ]; then bash scripts/dns.sh stop "$WASM_PKI_DNS_DIR" || true; fi
  if [ -n "${WASM_PKI_SOFTHSM_DIR:-}" ]; then bash scripts/softhsm.sh stop "$WASM_PKI_SOFTHSM_DIR" || true; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "tools"
# openssl and curl check the HTTPS listener (curl also over HTTP/2); certutil puts the test CA
# into the browser's NSS store. certbot (it brings its python3 packages) and lego are the ACME
# clients the ACME tests drive; nsupdate and dig (bind9-dnsutils) talk to scripts/dns.sh's server.
for tool in openssl:openssl curl:curl certutil:libnss3-tools certbot:certbot lego:lego \
  nsupdate:bind9-dnsutils dig:bind9-dnsutils; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${tool#*:}"
  fi
done
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi
openssl version
certbot --version
# Debian's lego build says `lego version dev`; the package version is the real one.
echo "$(lego --version) (Debian package $(dpkg-query -W -f '${Version}' lego 2>/dev/null || echo unknown))"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
for c in rustfmt clippy; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

step "PostgreSQL: a throwaway cluster for the ledger tests (scripts/pg.sh)"
eval "$(bash scripts/pg.sh start)"
echo "PostgreSQL $("$WASM_PKI_PG_BIN/postgres" --version | grep -oE '[0-9.]+$') on port $WASM_PKI_PG_PORT, data in $WASM_PKI_PG_DIR"

step "DNS: a throwaway authoritative server for the ACME tests (scripts/dns.sh)"
eval "$(bash scripts/dns.sh start)"
echo "$(/usr/sbin/named -v) on $WASM_PKI_DNS_ADDR, zone $WASM_PKI_DNS_ZONE (TSIG key $WASM_PKI_DNS_TSIG_NAME), files in $WASM_PKI_DNS_DIR"

step "SoftHSM2: a throwaway PKCS#11 token for the key-store tests (scripts/softhsm.sh)"
eval "$(bash scripts/softhsm.sh start)"
echo "SoftHSM $(dpkg-query -W -f '${Version}' softhsm2), opensc $(dpkg-query -W -f '${Version}' opensc): token $WASM_PKI_SOFTHSM_TOKEN in $WASM_PKI_SOFTHSM_DIR"

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "core for wasm32-unknown-unknown; the module crate's faces; the core's dependencies"
cargo build -p wasm-pki --lib --release --target wasm32-unknown-unknown
cargo clippy -p wasm-pki-module --lib --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p wasm-pki-module --lib --target wasm32-unknown-unknown --features test-hooks -- -D warnings
# The core is a plain library: no JS bindings or JS-backed randomness in its dependency tree.
if cargo tree -p wasm-pki -e normal --target all | grep -E 'wasm-bindgen|js-sys|getrandom'; then
  echo "the core depends on wasm-bindgen, js-sys or getrandom (above): it must not" >&2; exit 1
fi

step "benchmarks compile"
cargo bench -p wasm-pki --no-run

step "npm package (wasm-bindgen, wasm-opt), the server build and the test-only sandbox module"
bash scripts/build-pkg.sh --test-hooks --server
export WASM_PKI_TEST_MODULE="$CARGO_TARGET_DIR/wasm-pki-test-module/wasm_pki_bg.wasm"

step "the signer's release binary (it embeds the page and the npm package)"
cargo build --release -p wasm-pki-host
export WASM_PKI_RELEASE_BIN="$CARGO_TARGET_DIR/release/wasm-pki"

step "scripts/run.sh's build steps twice: the second changes nothing (tests/rebuild.sh)"
bash tests/rebuild.sh 2>&1 | tee -a "$log"

rm -f tests/out/figures.txt
step "Rust tests (core: unit, openssl, rustls mTLS, hostile input; host: sandbox limits, end to end)"
# The soak (host/tests/soak.rs) runs two minutes past the throughput limit here.
WASM_PKI_SOAK_SECS="${WASM_PKI_SOAK_SECS:-120}" cargo test --workspace --all-targets 2>&1 | tee -a "$log"
cargo test --workspace --doc 2>&1 | tee -a "$log"
# The server build of the module (wide arithmetic) through the same end-to-end tests, with the
# CA key in the host's key store (`memory`) instead of the sandbox; the agent's tests too, so the
# JWT-SVIDs the spiffe crate fetches and validates are signed by the host's JWT key.
WASM_PKI_E2E_MODULE="$PWD/host/dist/wasm_pki_server.wasm" WASM_PKI_KEY_STORE=memory \
  cargo test --workspace --test e2e --test agent 2>&1 | tee -a "$log"

step "Node tests (npm API, openssl, X509Certificate, WebCrypto, npm pack)"
node --test tests/node/ 2>&1 | tee -a "$log"

step "owner page in Chromium against wasm-pki serve (playwright-core)"
# The release binary, which embeds the page and the npm package built above.
export WASM_PKI_BIN="$WASM_PKI_RELEASE_BIN"
node --test tests/browser/ 2>&1 | tee -a "$log"

step "fuzzing: cargo-fuzz, ${WASM_PKI_FUZZ_SECS:-36} s per target (scripts/fuzz.sh)"
bash scripts/fuzz.sh "${WASM_PKI_FUZZ_SECS:-36}"

step "figures"
cat tests/out/figures.txt 2>/dev/null || true

# One closing line over every runner above (set -o pipefail already failed the run on any failure).
passed=$(grep -hoE '(test result: ok\. [0-9]+ passed|^# pass [0-9]+)' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
failed=$(grep -hoE '([0-9]+ failed;|^# fail [0-9]+)' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
printf '\ntests: %s passed, %s failed\n' "$passed" "$failed"
