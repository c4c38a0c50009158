#!/usr/bin/env bash
# Load test on loopback: `wasm-pki serve` against Debian's `cfssl serve`, signing the same CSRs with
# the same kind of CA, in one run. Prints one table. Usage: scripts/bench-server.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
secs="${1:-10}"
conns="${2:-8}"
for tool in cfssl wrk; do
  command -v $tool >/dev/null || { apt-get update -qq; apt-get install -y -qq golang-cfssl wrk; }
done
[ -f pkg/dist/wasm_pki_bg.wasm ] || bash scripts/build-pkg.sh
cargo build -q --release -p wasm-pki-host
bin="$CARGO_TARGET_DIR/release/wasm-pki"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# One P-256 root CA, used by both servers.
"$bin" init --dir "$work/ca" --name "Bench CA" >/dev/null
openssl pkey -in "$work/ca/ca.key" -out "$work/cfssl-ca-key.pem" 2>/dev/null
cat > "$work/cfssl.json" <<JSON
{"signing": {"default": {"expiry": "24h", "usages": ["digital signature", "key encipherment", "server auth", "client auth"]}}}
JSON

# CSRs made by openssl, the same for both servers.
for alg in p256 ed25519 rsa2048; do
  case $alg in
    p256) opts=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) ;;
    ed25519) opts=(-algorithm ED25519) ;;
    rsa2048) opts=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048) ;;
  esac
  openssl genpkey "${opts[@]}" -out "$work/$alg.key" 2>/dev/null
  openssl req -new -key "$work/$alg.key" -subj "/CN=bench.example.com" -addext "subjectAltName=DNS:bench.example.com" -out "$work/$alg.csr" 2>/dev/null
  python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' "$work/$alg.csr" > "$work/$alg.ours.json"
  python3 -c 'import json,sys; print(json.dumps({"certificate_request": open(sys.argv[1]).read()}))' "$work/$alg.csr" > "$work/$alg.cfssl.json"
done

port_ours=$((20000 + RANDOM % 10000)); port_cfssl=$((port_ours + 1)); port_wide=$((port_ours + 2))
"$bin" serve --dir "$work/ca" --listen "127.0.0.1:$port_ours" > "$work/ours.log" 2>&1 &
pids+=($!)
# The server build of the module (wide arithmetic), when scripts/build-pkg.sh --server made it.
servers=(wasm-pki)
if [ -f host/dist/wasm_pki_server.wasm ]; then
  servers+=(wasm-pki-server-build)
  cp -r "$work/ca" "$work/ca-wide"
  "$bin" serve --dir "$work/ca-wide" --module host/dist/wasm_pki_server.wasm \
    --listen "127.0.0.1:$port_wide" > "$work/wide.log" 2>&1 &
  pids+=($!)
fi
servers+=(cfssl)
cfssl serve -address 127.0.0.1 -port "$port_cfssl" -ca "$work/ca/ca.pem" -ca-key "$work/cfssl-ca-key.pem" -config "$work/cfssl.json" > "$work/cfssl.log" 2>&1 &
pids+=($!)
for port in $port_ours $port_cfssl $port_wide; do
  [ $port = $port_wide ] && [ ! -d "$work/ca-wide" ] && continue
  for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/" && break; sleep 0.1; done
done
token=$("$bin" token create --dir "$work/ca" --identity bench.example.com --uses 100000000 --ttl 1d 2>/dev/null | tail -n 1)
[ -d "$work/ca-wide" ] && token_wide=$("$bin" token create --dir "$work/ca-wide" --identity bench.example.com --uses 100000000 --ttl 1d 2>/dev/null | tail -n 1)

# Check both answer with a certificate before measuring.
curl -sf -H "Authorization: Bearer $token" --data-binary @"$work/p256.ours.json" "127.0.0.1:$port_ours/v1/sign" | grep -q BEGIN
curl -sf --data-binary @"$work/p256.cfssl.json" "127.0.0.1:$port_cfssl/api/v1/cfssl/sign" | grep -q BEGIN

echo "Loopback load: wrk, $conns connections, 2 threads, ${secs}s per cell, $(nproc) cores; same openssl CSRs, same P-256 CA"
echo
echo "| CSR | server | certs/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
declare -A RPS P99
for alg in p256 ed25519 rsa2048; do
  for server in "${servers[@]}"; do
    case $server in
      wasm-pki) url="http://127.0.0.1:$port_ours/v1/sign"; body="$work/$alg.ours.json"; tok="$token" ;;
      wasm-pki-server-build) url="http://127.0.0.1:$port_wide/v1/sign"; body="$work/$alg.ours.json"; tok="$token_wide" ;;
      cfssl) url="http://127.0.0.1:$port_cfssl/api/v1/cfssl/sign"; body="$work/$alg.cfssl.json"; tok="" ;;
    esac
    # cfssl (2016) cannot sign Ed25519 CSRs: check once, and leave the cell out.
    if [ $server = cfssl ] && ! curl -sf --data-binary @"$body" "$url" | grep -q BEGIN; then
      echo "| $alg | $server | unsupported | | | |"
      continue
    fi
    line=$(WRK_BODY="$body" WRK_TOKEN="$tok" wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s -s benches/server/post.lua "$url" | grep RESULT)
    eval "$(echo "$line" | sed 's/^RESULT //')"
    echo "| $alg | $server | $rps | $p50_ms | $p99_ms | $((errors + non2xx)) |"
    RPS[$alg,$server]=$rps; P99[$alg,$server]=$p99_ms
  done
done
echo
for alg in p256 ed25519 rsa2048; do
  for server in "${servers[@]}"; do
    [ $server = cfssl ] && continue
    if [ -n "${RPS[$alg,cfssl]:-}" ]; then
      ratio=$(awk -v a="${RPS[$alg,$server]}" -v b="${RPS[$alg,cfssl]}" 'BEGIN {printf "%.2fx", a / b}')
      printf 'SUMMARY\t%s server certs/s (%s vs cfssl)\t%s/s, p99 %s ms\t%s/s, p99 %s ms\t%s\t> 1x at <= p99\n' \
        "$alg" "$server" "${RPS[$alg,$server]}" "${P99[$alg,$server]}" "${RPS[$alg,cfssl]}" "${P99[$alg,cfssl]}" "$ratio"
    else
      printf 'SUMMARY\t%s server certs/s (%s)\t%s/s, p99 %s ms\tcfssl: unsupported\t-\t-\n' \
        "$alg" "$server" "${RPS[$alg,$server]}" "${P99[$alg,$server]}"
    fi
  done
done
issued=$("$bin" list --dir "$work/ca" | wc -l)
echo
echo "wasm-pki recorded $issued certificates in its ledger during the run (cfssl records none)."
