#!/usr/bin/env bash
# Load test on loopback: `wasm-pki serve` over HTTPS (its default) and over plain HTTP
# (--plain-http) against Debian's `cfssl serve` (plain HTTP; it has no TLS listener of its own here),
# signing the same CSRs with the same kind of CA, in one run. Prints one table.
# Usage: scripts/bench-server.sh [seconds] [connections]
# WASM_PKI_BASELINE_BIN=path adds that binary (e.g. a build of an older commit) as `baseline`, plain
# HTTP, so that a change of HTTP stack is measured side by side.
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

# Each wasm-pki server gets its own copy of the CA (and so its own ledger): name, URL, token.
declare -A URL TOKEN
port=$((20000 + RANDOM % 10000))
servers=()
start() { # name scheme [serve options...]
  local name=$1 scheme=$2 the_bin=$bin; shift 2
  [ "$name" = baseline ] && the_bin=$WASM_PKI_BASELINE_BIN
  port=$((port + 1))
  cp -r "$work/ca" "$work/ca-$name"
  "$the_bin" serve --dir "$work/ca-$name" --listen "127.0.0.1:$port" --log-format off "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  URL[$name]="$scheme://127.0.0.1:$port/v1/sign"
  TOKEN[$name]=$("$bin" token create --dir "$work/ca-$name" --identity bench.example.com --uses 100000000 --ttl 1d 2>/dev/null | tail -n 1)
  servers+=("$name")
}
start wasm-pki https
start wasm-pki-plain http --plain-http
# The server build of the module (wide arithmetic), when scripts/build-pkg.sh --server made it.
if [ -f host/dist/wasm_pki_server.wasm ]; then
  start wasm-pki-server-build https --module host/dist/wasm_pki_server.wasm
fi
if [ -n "${WASM_PKI_BASELINE_BIN:-}" ]; then
  start baseline http
fi
port=$((port + 1))
cfssl serve -address 127.0.0.1 -port "$port" -ca "$work/ca/ca.pem" -ca-key "$work/cfssl-ca-key.pem" -config "$work/cfssl.json" > "$work/cfssl.log" 2>&1 &
pids+=($!)
URL[cfssl]="http://127.0.0.1:$port/api/v1/cfssl/sign"
servers+=(cfssl)
# Every server answers with a certificate before measuring (ours over HTTPS trusting only the CA).
for name in "${servers[@]}"; do
  for _ in $(seq 200); do
    if [ "$name" = cfssl ]; then
      curl -sf --data-binary @"$work/p256.cfssl.json" "${URL[$name]}" 2>/dev/null | grep -q BEGIN && break
    else
      curl -sf --cacert "$work/ca/root.pem" -H "Authorization: Bearer ${TOKEN[$name]}" \
        --data-binary @"$work/p256.ours.json" "${URL[$name]}" 2>/dev/null | grep -q BEGIN && break
    fi
    sleep 0.1
  done
done

echo "Loopback load: wrk, $conns connections, 2 threads, ${secs}s per cell, $(nproc) cores; same openssl CSRs, same P-256 CA"
echo "(https: TLS 1.3 with keep-alive, the handshake once per connection; wrk speaks HTTP/1.1)"
echo
echo "| CSR | server | certs/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
declare -A RPS P99
for alg in p256 ed25519 rsa2048; do
  for server in "${servers[@]}"; do
    url=${URL[$server]}
    case $server in
      cfssl) body="$work/$alg.cfssl.json"; tok="" ;;
      *) body="$work/$alg.ours.json"; tok=${TOKEN[$server]} ;;
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
# The TLS cost and the stack change, side by side.
for alg in p256 ed25519 rsa2048; do
  for pair in "wasm-pki wasm-pki-plain" "wasm-pki-plain baseline"; do
    set -- $pair
    [ -n "${RPS[$alg,$2]:-}" ] || continue
    ratio=$(awk -v a="${RPS[$alg,$1]}" -v b="${RPS[$alg,$2]}" 'BEGIN {printf "%.2fx", a / b}')
    printf 'SUMMARY\t%s server certs/s (%s vs %s)\t%s/s, p99 %s ms\t%s/s, p99 %s ms\t%s\t-\n' \
      "$alg" "$1" "$2" "${RPS[$alg,$1]}" "${P99[$alg,$1]}" "${RPS[$alg,$2]}" "${P99[$alg,$2]}" "$ratio"
  done
done
issued=$("$bin" list --dir "$work/ca-wasm-pki" | grep -vc 'token=listener')
echo
echo "wasm-pki (https) recorded $issued certificates in its ledger during the run (cfssl records none)."
