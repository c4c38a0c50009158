#!/usr/bin/env bash
# A throwaway authoritative DNS server for the ACME tests (no mock): installs Debian's bind9 when
# missing and runs `named` from a temporary directory on a free loopback port (IPv4 only, UDP and
# TCP), authoritative for the zone acme.test. that answers every name under it with 127.0.0.1
# (`acme.test.` and `*.acme.test.` A records; no AAAA, so validators never try ::1 first), does no
# recursion, and takes RFC 2136 dynamic updates signed with a fresh TSIG key (hmac-sha256), which
# is what dns-01 clients (lego's rfc2136 provider, nsupdate) use. It prints the variables that
# name it:
#   eval "$(bash scripts/dns.sh start)"  # WASM_PKI_DNS_DIR, _ADDR, _PORT, _ZONE, _TSIG_NAME,
#                                        # _TSIG_SECRET (base64), _TSIG_ALG (hmac-sha256)
#   bash scripts/dns.sh stop "$WASM_PKI_DNS_DIR"
# A DNS quirk to keep in mind: while `_acme-challenge.x.acme.test` has a TXT record,
# `x.acme.test` is an empty non-terminal and the wildcard no longer answers its A query; so a test
# does not validate http-01 or tls-alpn-01 for a name whose dns-01 record is still in place.
set -euo pipefail
zone=acme.test
key_name=wasm-pki-acme-test
named_bin=/usr/sbin/named

# A port free for both UDP and TCP on 127.0.0.1 (named needs both), from the high range.
free_port() {
  python3 - <<'EOF'
import random, socket
for _ in range(200):
    port = random.randint(20000, 60999)
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", port))
            s.close()
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit("no free port")
EOF
}

# Whether the server in $1 answers the zone's SOA on port $2.
answers() {
  [ -n "$(dig @127.0.0.1 -p "$2" "$zone" SOA +short +norecurse +time=1 +tries=1 2>/dev/null)" ]
}

write_config() {
  local dir="$1" port="$2"
  cat >"$dir/named.conf" <<EOF
include "$dir/tsig.key";
options {
  directory "$dir";
  pid-file "$dir/named.pid";
  session-keyfile "$dir/session.key";
  managed-keys-directory "$dir";
  listen-on port $port { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  allow-query { any; };
  allow-transfer { none; };
  dnssec-validation no;
  notify no;
};
// No rndc control channel: it would take the shared port 953 (and /etc/bind's rndc.key).
controls { };
logging {
  channel log { file "$dir/named.log"; severity info; print-time yes; print-category yes; };
  category default { log; };
  category update { log; };
  category update-security { log; };
  category queries { log; };
};
zone "$zone." {
  type primary;
  file "$dir/$zone.zone";
  update-policy { grant $key_name. zonesub ANY; };
};
EOF
}

case "${1:-}" in
start)
  if [ ! -x "$named_bin" ] || ! command -v tsig-keygen >/dev/null 2>&1; then
    apt-get update -qq >&2 && apt-get install -y -qq bind9 bind9-utils >&2
  fi
  if ! command -v dig >/dev/null 2>&1 || ! command -v nsupdate >/dev/null 2>&1; then
    apt-get update -qq >&2 && apt-get install -y -qq bind9-dnsutils >&2
  fi
  dir=$(mktemp -d /tmp/wasm-pki-dns.XXXXXX)
  chmod 755 "$dir"
  tsig-keygen -a hmac-sha256 "$key_name." >"$dir/tsig.key"
  secret=$(sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$dir/tsig.key")
  [ -n "$secret" ] || { echo "dns.sh: no secret in $dir/tsig.key" >&2; cat "$dir/tsig.key" >&2; exit 1; }
  cat >"$dir/$zone.zone" <<EOF
\$TTL 5
@   IN SOA ns.$zone. hostmaster.$zone. 1 60 60 600 5
@   IN NS  ns.$zone.
@   IN A   127.0.0.1
*   IN A   127.0.0.1
EOF
  # A port found free can be taken before named binds it: then named exits at once (it cannot
  # listen) and another port is tried. -L: named's own messages before and after the logging
  # configuration go to named.log, not to a syslog that may not exist.
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    write_config "$dir" "$port"
    rm -f "$dir/named.pid" "$dir/named.log"
    if ! "$named_bin" -c "$dir/named.conf" -4 -n 1 -L "$dir/named.log" >"$dir/named.out" 2>&1; then
      if [ "$attempt" -lt 5 ] && grep -q 'unable to listen' "$dir/named.log" 2>/dev/null; then
        continue
      fi
      echo "dns.sh: named did not start; its output and log:" >&2
      cat "$dir/named.out" "$dir/named.log" >&2 2>/dev/null || true
      rm -rf "$dir"
      exit 1
    fi
    break
  done
  deadline=$((SECONDS + 20))
  until answers "$dir" "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "dns.sh: named on 127.0.0.1:$port did not answer within 20 s; its output and log:" >&2
      cat "$dir/named.out" "$dir/named.log" >&2 2>/dev/null || true
      [ -s "$dir/named.pid" ] && kill "$(cat "$dir/named.pid")" 2>/dev/null || true
      rm -rf "$dir"
      exit 1
    fi
    sleep 0.1
  done
  echo "$port" >"$dir/port"
  echo "export WASM_PKI_DNS_DIR=$dir WASM_PKI_DNS_ADDR=127.0.0.1:$port WASM_PKI_DNS_PORT=$port" \
    "WASM_PKI_DNS_ZONE=$zone WASM_PKI_DNS_TSIG_NAME=$key_name WASM_PKI_DNS_TSIG_SECRET=$secret" \
    "WASM_PKI_DNS_TSIG_ALG=hmac-sha256"
  ;;
stop)
  dir="${2:?usage: dns.sh stop DIR}"
  if [ -s "$dir/named.pid" ]; then
    pid=$(cat "$dir/named.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: dns.sh start | stop DIR" >&2
  exit 2
  ;;
esac
