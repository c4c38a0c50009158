#!/usr/bin/env bash
# Builds everything, starts the sandboxed signer over HTTPS with a fresh CA in ./demo-ca (kept
# between runs), prints an enrolment token; the signer prints the page's https:// address, the CA's
# fingerprint and a curl line. Usage: scripts/run.sh [identity] [listen]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
identity="${1:-workload.example.com}"
listen="${2:-127.0.0.1:8443}"
bash scripts/build-pkg.sh
cargo build --release -p wasm-pki-host
bin="$CARGO_TARGET_DIR/release/wasm-pki"
dir=demo-ca
[ -f "$dir/ca.pem" ] || "$bin" init --dir "$dir" --name "wasm-pki demo CA"
token=$("$bin" token create --dir "$dir" --identity "$identity" --ttl 1h | tail -n 1)
echo
echo "enrolment token for $identity (single use, 1 h):"
echo "  $token"
echo "open the https:// address below (trust $dir/root.pem, whose SHA-256 fingerprint is printed),"
echo "make the key and CSR with CN/DNS $identity, and paste the token"
echo
echo "ACME: https://$listen/acme/demo/directory (scripts/demo-policy.toml); for example"
echo "  REQUESTS_CA_BUNDLE=$dir/root.pem certbot certonly --standalone --http-01-port 8080 \\"
echo "    --server https://$listen/acme/demo/directory -d localhost --register-unsafely-without-email --agree-tos"
echo
exec "$bin" serve --dir "$dir" --listen "$listen" --policy scripts/demo-policy.toml
