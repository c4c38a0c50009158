#!/usr/bin/env bash
# Builds everything, starts the sandboxed signer over HTTPS with a fresh CA in ./demo-ca (kept
# between runs), prints an enrolment token; the signer prints the page's https:// address, the CA's
# fingerprint and a curl line. Nothing changed since the last run: nothing is rebuilt or relinked
# (scripts/build-pkg.sh writes only files whose content changed), so it listens within seconds.
# Usage: scripts/run.sh [identity] [listen]   (listen on 0.0.0.0:8443 with --name for a LAN name:
#        WASM_PKI_NAME=ca.lan scripts/run.sh workload.example.com 0.0.0.0:8443)
#        scripts/run.sh --build-only          (the build steps alone, then exit)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
bash scripts/build-pkg.sh
cargo build --release -p wasm-pki-host
[ "${1:-}" = --build-only ] && exit 0
identity="${1:-workload.example.com}"
listen="${2:-127.0.0.1:8443}"
bin="$CARGO_TARGET_DIR/release/wasm-pki"
dir=demo-ca
[ -f "$dir/ca.pem" ] || "$bin" init --dir "$dir" --name "wasm-pki demo CA"
token=$("$bin" token create --dir "$dir" --identity "$identity" --ttl 1h | tail -n 1)
root="$PWD/$dir/root.pem"
echo
echo "enrolment token for $identity (single use, 1 h):"
echo "  $token"
echo "open the https:// address below, make the key and CSR with CN/DNS $identity, and paste the token"
echo
echo "trust the demo CA ($root, SHA-256 fingerprint printed below) once, then reload:"
echo "  Debian/Ubuntu: sudo cp $root /usr/local/share/ca-certificates/wasm-pki-demo.crt && sudo update-ca-certificates"
echo "                 (Chromium on Linux reads its own store: certutil -d sql:\$HOME/.pki/nssdb -A -t C,, -n wasm-pki-demo -i $root)"
echo "  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain $root"
echo "  Windows:       certutil -addstore -f Root root.pem   (an administrator prompt, with the file copied over)"
echo "  Firefox:       Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import"
echo "from another machine on the LAN: WASM_PKI_NAME=<a name it resolves> scripts/run.sh $identity 0.0.0.0:8443 (serve --name)"
echo
echo "ACME: https://$listen/acme/demo/directory (scripts/demo-policy.toml); for example"
echo "  REQUESTS_CA_BUNDLE=$dir/root.pem certbot certonly --standalone --http-01-port 8080 \\"
echo "    --server https://$listen/acme/demo/directory -d localhost --register-unsafely-without-email --agree-tos"
echo
names=()
[ -n "${WASM_PKI_NAME:-}" ] && names=(--name "$WASM_PKI_NAME")
exec "$bin" serve --dir "$dir" --listen "$listen" --policy scripts/demo-policy.toml "${names[@]}"
