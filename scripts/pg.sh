#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks (no mock): installs Debian's
# postgresql when missing, initdb into a temporary directory as the unprivileged `postgres` user,
# listens on a free loopback port with TLS (a certificate for 127.0.0.1 from a test CA in
# DIR/ca.crt, so the TLS path of the ledger is tested too), and prints the variables that name it:
#   eval "$(bash scripts/pg.sh start)"   # WASM_PKI_TEST_PG, WASM_PKI_PG_DIR, WASM_PKI_PG_BIN
#   bash scripts/pg.sh stop "$WASM_PKI_PG_DIR"
# Fault tests take the same cluster down (a crash: immediate shutdown) and up again:
#   bash scripts/pg.sh down "$WASM_PKI_PG_DIR";  bash scripts/pg.sh up "$WASM_PKI_PG_DIR"
set -euo pipefail
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
up() {
  local dir="$1" port
  port=$(cat "$dir/port")
  as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 \
    -c max_connections=300 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >&2
}
down() { as_pg "$(pg_bin)/pg_ctl" -D "$1/data" -m immediate -w stop >&2; }
case "${1:-}" in
start)
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  bin=$(pg_bin)
  dir=$(mktemp -d /tmp/wasm-pki-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # TLS: a test CA (ca.crt, what sslrootcert names) and a server certificate for 127.0.0.1.
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=wasm-pki test database CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -new "${ec[@]}" -subj /CN=127.0.0.1 -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  chmod 600 "$dir/server.key"
  [ "$(id -u)" = 0 ] && chown postgres "$dir/server.key" "$dir/server.crt"
  echo "$port" > "$dir/port"
  up "$dir"
  echo "export WASM_PKI_TEST_PG=postgres://postgres@127.0.0.1:$port WASM_PKI_PG_DIR=$dir WASM_PKI_PG_BIN=$bin WASM_PKI_PG_PORT=$port"
  ;;
stop)
  dir="${2:?usage: pg.sh stop DIR}"
  down "$dir" 2>/dev/null || true
  rm -rf "$dir"
  ;;
down) down "${2:?usage: pg.sh down DIR}" ;;
up) up "${2:?usage: pg.sh up DIR}" ;;
*)
  echo "usage: pg.sh start | stop DIR | down DIR | up DIR" >&2
  exit 2
  ;;
esac
