#!/usr/bin/env bash
# Builds the npm package's wasm from the module crate (pkg/Cargo.toml: the JS face and the sandbox's
# guest face over the core): cargo (wasm32) -> wasm-bindgen (pinned) -> wasm-opt (npm binaryen).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"

WBG_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WBG_VERSION"; then
  echo "installing wasm-bindgen-cli $WBG_VERSION into ~/.cargo/bin (about 5 minutes, once per machine)"
  cargo install wasm-bindgen-cli --version "$WBG_VERSION"
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
[ -x pkg/node_modules/.bin/wasm-opt ] || (cd pkg && npm ci --no-audit --no-fund)

# The `wasm` profile (Cargo.toml): size-optimised but for the hot crypto crates.
cargo build -p wasm-pki-module --lib --profile wasm --target wasm32-unknown-unknown
rm -rf pkg/dist
wasm-bindgen --target web --out-dir pkg/dist --out-name wasm_pki \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/wasm_pki_module.wasm"
rm -f pkg/dist/package.json pkg/dist/*.d.ts pkg/dist/.gitignore
# Debian's binaryen 108 breaks wasm-bindgen output; the npm one (v132) does not.
pkg/node_modules/.bin/wasm-opt -O3 --enable-reference-types --enable-multivalue --enable-bulk-memory \
  --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
  pkg/dist/wasm_pki_bg.wasm -o pkg/dist/wasm_pki_bg.wasm
raw=$(stat -c %s pkg/dist/wasm_pki_bg.wasm)
gz=$(gzip -9 -c pkg/dist/wasm_pki_bg.wasm | wc -c)
sha=$(sha256sum pkg/dist/wasm_pki_bg.wasm | cut -d' ' -f1)
echo "pkg/dist/wasm_pki_bg.wasm: ${raw} bytes raw, ${gz} bytes gzip -9, sha256 ${sha}"

# --test-hooks: also build the test-only module (endless loop, unbounded allocation) that the
# host's limit tests load; it is never packaged.
# --server: also build host/dist/wasm_pki_server.wasm, the same source and features compiled with
# the wasm wide-arithmetic proposal (a 64x64->128-bit multiply) and curve25519-dalek's 64-bit
# backend. wasmtime runs it; browsers and Node do not (yet), so the npm package never ships it.
for arg in "$@"; do
  case "$arg" in
    --test-hooks)
      out="$CARGO_TARGET_DIR/wasm-pki-test-module"
      cargo build -p wasm-pki-module --lib --profile wasm --target wasm32-unknown-unknown --features test-hooks \
        --target-dir "$CARGO_TARGET_DIR/test-hooks"
      rm -rf "$out"
      wasm-bindgen --target web --out-dir "$out" --out-name wasm_pki \
        "$CARGO_TARGET_DIR/test-hooks/wasm32-unknown-unknown/wasm/wasm_pki_module.wasm"
      echo "test module: $out/wasm_pki_bg.wasm"
      ;;
    --server)
      RUSTFLAGS='-C target-feature=+wide-arithmetic --cfg curve25519_dalek_bits="64"' \
        cargo build -p wasm-pki-module --lib --profile wasm --target wasm32-unknown-unknown \
        --target-dir "$CARGO_TARGET_DIR/server-module"
      tmp="$CARGO_TARGET_DIR/server-module/bindgen"
      rm -rf "$tmp" && mkdir -p host/dist
      wasm-bindgen --target web --out-dir "$tmp" --out-name wasm_pki \
        "$CARGO_TARGET_DIR/server-module/wasm32-unknown-unknown/wasm/wasm_pki_module.wasm"
      pkg/node_modules/.bin/wasm-opt -O3 --enable-reference-types --enable-multivalue \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-wide-arithmetic \
        "$tmp/wasm_pki_bg.wasm" -o host/dist/wasm_pki_server.wasm.tmp
      mv host/dist/wasm_pki_server.wasm.tmp host/dist/wasm_pki_server.wasm
      echo "server module: host/dist/wasm_pki_server.wasm, sha256 $(sha256sum host/dist/wasm_pki_server.wasm | cut -d' ' -f1)"
      ;;
    *) echo "build-pkg.sh: unknown option $arg (--test-hooks, --server)" >&2; exit 2 ;;
  esac
done
