#!/usr/bin/env bash
# Load test on loopback: `wasm-pki serve` over HTTPS (its default) and over plain HTTP
# (--plain-http) against Debian's `cfssl serve`, signing the same CSRs with the same CA, in one run.
# Equal work: cfssl with its SQLite certificate database (`-db-config`, the `certificates` and
# `ocsp_responses` tables as its migration creates them), so that, like wasm-pki, it records every
# certificate before answering; and cfssl without one. Each over plain HTTP and over HTTPS (cfssl's
# -tls-cert/-tls-key). Prints one table and the ratios against the goals.
# Usage: scripts/bench-server.sh [seconds] [connections]
# The key stores side by side: `wasm-pki` keeps the CA key in the sandbox (the default),
# `wasm-pki-memory` in the host (ring), `wasm-pki-pkcs11` in a SoftHSM2 token (its own CA, made in
# the token; scripts/softhsm.sh). Ratios for `memory` against cfssl are the issue-26 goals.
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
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${hsm_dir:-}" ]; then bash scripts/softhsm.sh stop "$hsm_dir" || true; fi
  rm -rf "$work"
}
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

# cfssl's database (certdb/sqlite/migrations/001_CreateCertificates.sql of cfssl 1.2) and its TLS
# certificate (a leaf of the same CA for 127.0.0.1).
cfssl_db() { # name -> a db-config file for a fresh database
  python3 - "$work/$1.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("""
CREATE TABLE certificates (
  serial_number blob NOT NULL, authority_key_identifier blob NOT NULL, ca_label blob,
  status blob NOT NULL, reason int, expiry timestamp, revoked_at timestamp, pem blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier));
CREATE TABLE ocsp_responses (
  serial_number blob NOT NULL, authority_key_identifier blob NOT NULL, body blob NOT NULL,
  expiry timestamp, PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier));
""")
c.commit()
PY
  printf '{"driver": "sqlite3", "data_source": "%s"}\n' "$work/$1.db" > "$work/$1.db.json"
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/cfssl-tls.key" 2>/dev/null
openssl req -new -key "$work/cfssl-tls.key" -subj "/CN=127.0.0.1" -out "$work/cfssl-tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/cfssl-tls.ext"
openssl x509 -req -in "$work/cfssl-tls.csr" -CA "$work/ca/ca.pem" -CAkey "$work/cfssl-ca-key.pem" -set_serial 1 \
  -days 1 -extfile "$work/cfssl-tls.ext" -out "$work/cfssl-tls.pem" 2>/dev/null

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
start wasm-pki-memory https --key-store memory
start wasm-pki-plain http --plain-http
# A CA whose keys were made in a SoftHSM2 token (P-256), signing there.
eval "$(bash scripts/softhsm.sh start 2>/dev/null)"
hsm_dir=$WASM_PKI_SOFTHSM_DIR
hsm_uri="pkcs11:token=$WASM_PKI_SOFTHSM_TOKEN;object=bench?module-path=$WASM_PKI_SOFTHSM_MODULE&pin-source=file:$WASM_PKI_SOFTHSM_PIN_FILE"
"$bin" init --dir "$work/ca-hsm" --name "Bench HSM CA" --key-store "$hsm_uri" >/dev/null
cp -r "$work/ca-hsm" "$work/ca-hsm-template"
start_hsm() {
  port=$((port + 1))
  "$bin" serve --dir "$work/ca-hsm" --listen "127.0.0.1:$port" --log-format off --key-store "$hsm_uri" > "$work/wasm-pki-pkcs11.log" 2>&1 &
  pids+=($!)
  URL[wasm-pki-pkcs11]="https://127.0.0.1:$port/v1/sign"
  TOKEN[wasm-pki-pkcs11]=$("$bin" token create --dir "$work/ca-hsm" --identity bench.example.com --uses 100000000 --ttl 1d 2>/dev/null | tail -n 1)
  servers+=(wasm-pki-pkcs11)
}
start_hsm
# The server build of the module (wide arithmetic), when scripts/build-pkg.sh --server made it.
if [ -f host/dist/wasm_pki_server.wasm ]; then
  start wasm-pki-server-build https --module host/dist/wasm_pki_server.wasm
fi
if [ -n "${WASM_PKI_BASELINE_BIN:-}" ]; then
  start baseline http
fi
cfssl_start() { # name scheme [cfssl serve options...]
  local name=$1 scheme=$2; shift 2
  port=$((port + 1))
  cfssl serve -address 127.0.0.1 -port "$port" -ca "$work/ca/ca.pem" -ca-key "$work/cfssl-ca-key.pem" \
    -config "$work/cfssl.json" "$@" > "$work/$name.log" 2>&1 &
  pids+=($!)
  URL[$name]="$scheme://127.0.0.1:$port/api/v1/cfssl/sign"
  servers+=("$name")
}
tls=(-tls-cert "$work/cfssl-tls.pem" -tls-key "$work/cfssl-tls.key")
cfssl_db cfssl-db
cfssl_db cfssl-db-https
cfssl_start cfssl http
cfssl_start cfssl-db http -db-config "$work/cfssl-db.db.json"
cfssl_start cfssl-https https "${tls[@]}"
cfssl_start cfssl-db-https https "${tls[@]}" -db-config "$work/cfssl-db-https.db.json"
# Every server answers with a certificate before measuring (ours over HTTPS trusting only the CA).
for name in "${servers[@]}"; do
  for i in $(seq 201); do
    if [ "$i" = 201 ]; then
      echo "$name (${URL[$name]}) never answered; its log:"; tail -n 20 "$work/$name.log"; exit 1
    fi
    if [[ $name == cfssl* ]]; then
      curl -sf --cacert "$work/ca/root.pem" --data-binary @"$work/p256.cfssl.json" "${URL[$name]}" 2>/dev/null | grep -q BEGIN && break
    else
      root="$work/ca/root.pem"; [ "$name" = wasm-pki-pkcs11 ] && root="$work/ca-hsm/root.pem"
      curl -sf --cacert "$root" -H "Authorization: Bearer ${TOKEN[$name]}" \
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
      cfssl*) body="$work/$alg.cfssl.json"; tok="" ;;
      *) body="$work/$alg.ours.json"; tok=${TOKEN[$server]} ;;
    esac
    # cfssl (2016) cannot sign Ed25519 CSRs: check once, and leave the cell out.
    if [[ $server == cfssl* ]] && ! curl -sf --cacert "$work/ca/root.pem" --data-binary @"$body" "$url" | grep -q BEGIN; then
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
# Equal work, like for like: each wasm-pki listener against cfssl with its database (goal >= 3x at
# a lower p99) and without (goal >= 0.5x at a lower p99), same transport.
ratio_line() { # alg ours theirs goal
  local alg=$1 a=$2 b=$3 goal=$4
  [ -n "${RPS[$alg,$a]:-}" ] || return 0
  if [ -z "${RPS[$alg,$b]:-}" ]; then
    printf 'SUMMARY\t%s server certs/s (%s; %s cannot sign it)\t%s/s, p99 %s ms\t-\t-\t-\n' \
      "$alg" "$a" "$b" "${RPS[$alg,$a]}" "${P99[$alg,$a]}"
    return 0
  fi
  local ratio
  ratio=$(awk -v a="${RPS[$alg,$a]}" -v b="${RPS[$alg,$b]}" 'BEGIN {printf "%.2fx", a / b}')
  printf 'SUMMARY\t%s server certs/s (%s vs %s)\t%s/s, p99 %s ms\t%s/s, p99 %s ms\t%s\t%s\n' \
    "$alg" "$a" "$b" "${RPS[$alg,$a]}" "${P99[$alg,$a]}" "${RPS[$alg,$b]}" "${P99[$alg,$b]}" "$ratio" "$goal"
}
for alg in p256 ed25519 rsa2048; do
  ratio_line $alg wasm-pki-memory cfssl-https "(issue 26, key store memory) >= 0.6x at a lower p99"
  ratio_line $alg wasm-pki-memory cfssl-db-https "(issue 26, key store memory) >= 4x at a lower p99"
  ratio_line $alg wasm-pki-pkcs11 cfssl-db-https "(key store pkcs11, SoftHSM2) -"
  ratio_line $alg wasm-pki-memory wasm-pki "(memory vs sandbox) -"
  ratio_line $alg wasm-pki cfssl-db-https ">= 3x at a lower p99"
  ratio_line $alg wasm-pki cfssl-https ">= 0.5x at a lower p99"
  ratio_line $alg wasm-pki-plain cfssl-db ">= 3x at a lower p99"
  ratio_line $alg wasm-pki-plain cfssl ">= 0.5x at a lower p99"
  ratio_line $alg wasm-pki-server-build cfssl-db-https "(server build) -"
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
recorded() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM certificates").fetchone()[0])' "$1"; }
echo "wasm-pki (https) recorded $issued certificates in its ledger during the run; cfssl-db $(recorded "$work/cfssl-db.db"), cfssl-db-https $(recorded "$work/cfssl-db-https.db"); cfssl without a database records none."
