#!/usr/bin/env bash
# Every benchmark of the performance targets in one run, ending with one table of ratios:
# sandboxed issue vs native (host bench), the node agent's Workload API latency and batch, ACME issuances and their CPU against /v1/sign, the server vs `cfssl serve` (wrk on loopback), the npm
# package vs the JS libraries in Node, and the package's wasm size. Full outputs go to
# tests/out/bench/. Usage: scripts/bench.sh [seconds per server cell, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
out=tests/out/bench
mkdir -p "$out"

bash scripts/build-pkg.sh --server | tee "$out/build.txt"
echo "== sandboxed vs native (cargo bench -p wasm-pki-host --bench issue)"
cargo bench -q -p wasm-pki-host --bench issue 2>/dev/null | tee "$out/issue.txt"
echo "== the node agent with the release signer (cargo bench -p wasm-pki-host --bench agent)"
cargo build -q --release -p wasm-pki-host
cargo bench -q -p wasm-pki-host --bench agent 2>/dev/null | tee "$out/agent.txt"
echo "== ACME with the release signer (cargo bench -p wasm-pki-host --bench acme)"
cargo bench -q -p wasm-pki-host --bench acme 2>/dev/null | tee "$out/acme.txt"
echo "== server vs cfssl (scripts/bench-server.sh)"
bash scripts/bench-server.sh "${1:-10}" 8 | tee "$out/server.txt"
echo "== npm package vs JS libraries (node benches/node/compare.mjs)"
node benches/node/compare.mjs | tee "$out/node.txt"

gz=$(gzip -9 -c pkg/dist/wasm_pki_bg.wasm | wc -c)
{
  echo
  echo "Summary: $(nproc) cores, $(date -u +%Y-%m-%d), $(rustc --version | cut -d' ' -f1-2), node $(node --version)"
  echo
  echo "| measure | wasm-pki | compared with | ratio | target |"
  echo "|---|---|---|---|---|"
  cat "$out/issue.txt" "$out/agent.txt" "$out/acme.txt" "$out/server.txt" "$out/node.txt" | grep '^SUMMARY' |
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6}'
  echo "| npm package wasm, gzip -9 | $gz bytes | - | - | <= 300 KB |"
} | tee "$out/summary.md"
