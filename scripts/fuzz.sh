#!/usr/bin/env bash
# Bounded fuzz run of every target (cargo-fuzz, libFuzzer, nightly): CSR parse+verify, key import,
# the sandbox request decoder, the policy check, the renewal-proof verifier, the KBS plugin request decoder, the Vault API body decoder, the JWT-SVID validator, the node-agent API bodies, ACME requests (JWS and payloads). Seeds: fuzz/corpus/<target> (read only; new inputs
# go to a scratch corpus). A crash fails the run and leaves its input in tests/out/fuzz/; copy it to
# fuzz/regressions/<target>/ and tests/fuzz_regressions.rs replays it on every test run.
# Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}/fuzz"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++; } # libFuzzer is C++
cargo fuzz --version 2>/dev/null | grep -qx 'cargo-fuzz 0.13.2' || cargo install cargo-fuzz --version 0.13.2 --force
out=tests/out/fuzz
mkdir -p "$out"
cd fuzz
total=0
for t in csr key_import sandbox_request policy proof kbs vault jwt_svid agent_bodies acme; do
  scratch=$(mktemp -d)
  cargo +nightly fuzz build -O "$t" 2>&1 | tail -n 1
  log="../$out/$t.log"
  if ! cargo +nightly fuzz run -O "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=16384 \
      -artifact_prefix="../$out/$t-" -print_final_stats=1 > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED; the input is in $out/ (add it to fuzz/regressions/$t/)"
    exit 1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  corpus=$(ls "$scratch" | wc -l)
  echo "fuzz: $t: $runs inputs in ${secs}s, no crash ($corpus new corpus entries)"
  total=$((total + runs))
  rm -rf "$scratch"
done
echo "fuzz: $total inputs tried over 10 targets, 0 crashes"
