#!/usr/bin/env bash
# Certificates per second and p99 of `wasm-pki serve` on its default SQLite ledger, on PostgreSQL
# with one signer, and on PostgreSQL with two signers sharing it (two wrk runs at once, one per
# signer, their rates added and the worse p99 kept): one run, one machine, the same P-256 CSR
# over HTTPS. PostgreSQL is a throwaway cluster (scripts/pg.sh) with its durable defaults.
# Usage: scripts/bench-replicas.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
secs="${1:-10}"
conns="${2:-8}"
command -v wrk >/dev/null || { apt-get update -qq; apt-get install -y -qq wrk; }
[ -f pkg/dist/wasm_pki_bg.wasm ] || bash scripts/build-pkg.sh
cargo build -q --release -p wasm-pki-host
bin="$CARGO_TARGET_DIR/release/wasm-pki"
work=$(mktemp -d)
pids=()
eval "$(bash scripts/pg.sh start)"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash scripts/pg.sh stop "$WASM_PKI_PG_DIR"
  rm -rf "$work"
}
trap cleanup EXIT
"$bin" init --dir "$work/ca" --name "Bench CA" >/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/c.key" 2>/dev/null
openssl req -new -key "$work/c.key" -subj /CN=bench.example.com -out "$work/c.csr" 2>/dev/null
python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' "$work/c.csr" > "$work/body.json"
psql -q "$WASM_PKI_TEST_PG/postgres" -c "CREATE DATABASE bench"
pg="$WASM_PKI_TEST_PG/bench"
port=$((20000 + RANDOM % 10000))
serve() { # dir [options...]: starts a signer; its URL in $url
  port=$((port + 1))
  local dir=$1; shift
  "$bin" serve --dir "$dir" --listen "127.0.0.1:$port" --log-format off "$@" > "$work/serve-$port.log" 2>&1 &
  pids+=($!)
  url="https://127.0.0.1:$port/v1/sign"
}
ready() { # url token
  for _ in $(seq 200); do
    curl -sf --cacert "$work/ca/root.pem" -H "Authorization: Bearer $2" --data-binary @"$work/body.json" "$1" | grep -q BEGIN && return
    sleep 0.1
  done
  echo "no certificate from $1" >&2; exit 1
}
load() { # url token connections: prints "rps p99"
  WRK_BODY="$work/body.json" WRK_TOKEN="$2" wrk -t1 -c"$3" -d"${secs}s" --timeout 10s -s benches/server/post.lua "$1" \
    | grep RESULT | sed 's/^RESULT //' | tr ' ' '\n' | awk -F= '/^rps|^p99_ms|^errors|^non2xx/ {v[$1]=$2} END {print v["rps"], v["p99_ms"], v["errors"] + v["non2xx"]}'
}
token() { "$bin" token create --dir "$work/ca" "$@" --identity bench.example.com --uses 100000000 --ttl 1d 2>/dev/null | tail -n 1; }

echo "Loopback load: wrk, $conns connections in all, ${secs}s per row, $(nproc) cores; one P-256 CSR, HTTPS"
echo
echo "| ledger | signers | certs/s | p99 ms | errors |"
echo "|---|---|---|---|---|"
serve "$work/ca"; u=$url; t=$(token); ready "$u" "$t"
read -r rps p99 err < <(load "$u" "$t" "$conns")
echo "| SQLite | 1 | $rps | $p99 | $err |"
sqlite_rps=$rps
kill "${pids[-1]}"
serve "$work/ca" --ledger "$pg"; u1=$url; t=$(token --ledger "$pg"); ready "$u1" "$t"
read -r rps p99 err < <(load "$u1" "$t" "$conns")
echo "| PostgreSQL | 1 | $rps | $p99 | $err |"
pg1=$rps
serve "$work/ca" --ledger "$pg"; u2=$url; ready "$u2" "$t"
load "$u1" "$t" $((conns / 2)) > "$work/a" &
first=$!
load "$u2" "$t" $((conns - conns / 2)) > "$work/b"
wait "$first"
read -r ra pa ea < "$work/a"; read -r rb pb eb < "$work/b"
rps=$(awk -v a="$ra" -v b="$rb" 'BEGIN {printf "%.1f", a + b}')
p99=$(awk -v a="$pa" -v b="$pb" 'BEGIN {print (a > b ? a : b)}')
echo "| PostgreSQL | 2 | $rps | $p99 | $((ea + eb)) |"
echo
awk -v s="$sqlite_rps" -v p1="$pg1" -v p2="$rps" 'BEGIN {printf "PostgreSQL, 1 signer: %.2fx SQLite; 2 signers: %.2fx one signer on PostgreSQL\n", p1 / s, p2 / p1}'
