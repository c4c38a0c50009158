#!/usr/bin/env bash
# A throwaway PKCS#11 token for the key-store tests (no mock): Debian's SoftHSM2 with its token
# files in a temporary directory, initialised with a fresh random user PIN kept in a 0600 file.
# Installs softhsm2, opensc (pkcs11-tool, to inspect the token) and p11-kit's server and client
# module (a token behind a process the tests can stop) when missing. Prints the variables that
# name it:
#   eval "$(bash scripts/softhsm.sh start)"  # SOFTHSM2_CONF, WASM_PKI_SOFTHSM_DIR, _MODULE,
#                                            # _TOKEN (label), _PIN_FILE, WASM_PKI_P11KIT_CLIENT
#   bash scripts/softhsm.sh stop "$WASM_PKI_SOFTHSM_DIR"
set -euo pipefail
module=/usr/lib/softhsm/libsofthsm2.so

case "${1:-}" in
  start)
    client=$(ls /usr/lib/*/pkcs11/p11-kit-client.so 2>/dev/null | head -n 1 || true)
    if [ ! -f "$module" ] || ! command -v pkcs11-tool >/dev/null 2>&1 || ! command -v p11-kit >/dev/null 2>&1 \
      || [ -z "$client" ]; then
      apt-get update -qq >&2 && apt-get install -y -qq softhsm2 opensc p11-kit p11-kit-modules >&2
      client=$(ls /usr/lib/*/pkcs11/p11-kit-client.so | head -n 1)
    fi
    dir=$(mktemp -d -t wasm-pki-softhsm-XXXXXX)
    mkdir -m 0700 "$dir/tokens"
    cat > "$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
    pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    so_pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077 && printf '%s\n' "$pin" > "$dir/pin")
    SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label wasm-pki-test \
      --pin "$pin" --so-pin "$so_pin" >&2
    echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
    echo "export WASM_PKI_SOFTHSM_DIR=$dir"
    echo "export WASM_PKI_SOFTHSM_MODULE=$module"
    echo "export WASM_PKI_SOFTHSM_TOKEN=wasm-pki-test"
    echo "export WASM_PKI_SOFTHSM_PIN_FILE=$dir/pin"
    echo "export WASM_PKI_P11KIT_CLIENT=$client"
    ;;
  stop)
    dir="${2:?usage: softhsm.sh stop DIR}"
    case "$dir" in
      */wasm-pki-softhsm-*) rm -rf "$dir" ;;
      *) echo "not a token directory of this script: $dir" >&2; exit 1 ;;
    esac
    ;;
  *)
    echo "usage: softhsm.sh start | stop DIR" >&2
    exit 2
    ;;
esac
