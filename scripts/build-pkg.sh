#!/usr/bin/env bash
# Builds the npm package's wasm from the module crate (pkg/Cargo.toml: the JS face and the sandbox's
# guest face over the core): cargo (wasm32) -> wasm-bindgen (pinned) -> wasm-opt (npm binaryen).
set -euo pipefail
self_sha=$(sha256sum "$0" | cut -d' ' -f1)
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

# Nothing changed, nothing written: every output is made in a staging folder and copied over only
# when its content differs, so an unchanged build leaves pkg/dist's files and their modification
# times alone, and cargo neither reruns the host's build script nor recompiles and relinks the
# signer that embeds them. A stamp of the inputs (the cargo output and the tool versions) skips
# wasm-bindgen and wasm-opt when they would make the same files again.
install_if_changed() { # staging-dir dest-dir: make dest's files exactly staging's
  local from=$1 to=$2 f n
  mkdir -p "$to"
  for f in "$from"/*; do
    n=${f##*/}
    if ! cmp -s "$f" "$to/$n"; then
      cp "$f" "$to/.$n.tmp" && mv -f "$to/.$n.tmp" "$to/$n"
    fi
  done
  for f in "$to"/* "$to"/.[!.]*; do
    [ -e "$f" ] || continue
    [ -e "$from/${f##*/}" ] || rm -rf "$f"
  done
}
wasm_opt() { # in out [extra flags]: the module's wasm-opt pass
  local in=$1 out=$2; shift 2
  pkg/node_modules/.bin/wasm-opt -O3 --enable-reference-types --enable-multivalue --enable-bulk-memory \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals "$@" "$in" -o "$out"
}
inputs() { # wasm file: what the files made from it depend on
  sha256sum "$1" | cut -d' ' -f1
  wasm-bindgen --version
  pkg/node_modules/.bin/wasm-opt --version
  echo "$self_sha"
}
unchanged() { # stamp dest...: the stamp matches and every recorded output is as recorded
  local stamp=$1 inputs_now=$2
  [ -f "$stamp" ] || return 1
  [ "$(sed -n '1,/^--$/p' "$stamp" | sed '$d')" = "$inputs_now" ] || return 1
  sed '1,/^--$/d' "$stamp" | sha256sum -c --status 2>/dev/null
}
stamp_outputs() { # stamp inputs files...
  local stamp=$1 inputs_now=$2; shift 2
  { echo "$inputs_now"; echo "--"; sha256sum "$@"; } > "$stamp"
}

# The `wasm` profile (Cargo.toml): size-optimised but for the hot crypto crates.
cargo build -p wasm-pki-module --lib --profile wasm --target wasm32-unknown-unknown
module="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/wasm_pki_module.wasm"
stamp="$CARGO_TARGET_DIR/pkg-dist.stamp"
now=$(inputs "$module")
if unchanged "$stamp" "$now"; then
  echo "pkg/dist is up to date (same module, same tools): left as it is"
else
  stage=$(mktemp -d)
  wasm-bindgen --target web --out-dir "$stage" --out-name wasm_pki "$module"
  rm -f "$stage/package.json" "$stage"/*.d.ts "$stage/.gitignore"
  # Debian's binaryen 108 breaks wasm-bindgen output; the npm one (v132) does not.
  wasm_opt "$stage/wasm_pki_bg.wasm" "$stage/wasm_pki_bg.opt.wasm"
  mv "$stage/wasm_pki_bg.opt.wasm" "$stage/wasm_pki_bg.wasm"
  install_if_changed "$stage" pkg/dist
  rm -rf "$stage"
  stamp_outputs "$stamp" "$now" pkg/dist/*
fi
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
      server_in="$CARGO_TARGET_DIR/server-module/wasm32-unknown-unknown/wasm/wasm_pki_module.wasm"
      server_stamp="$CARGO_TARGET_DIR/server-module.stamp"
      now=$(inputs "$server_in")
      if ! unchanged "$server_stamp" "$now"; then
        tmp="$CARGO_TARGET_DIR/server-module/bindgen"
        rm -rf "$tmp" && mkdir -p host/dist
        wasm-bindgen --target web --out-dir "$tmp" --out-name wasm_pki "$server_in"
        wasm_opt "$tmp/wasm_pki_bg.wasm" "$tmp/server.wasm" --enable-wide-arithmetic
        cmp -s "$tmp/server.wasm" host/dist/wasm_pki_server.wasm \
          || mv "$tmp/server.wasm" host/dist/wasm_pki_server.wasm
        stamp_outputs "$server_stamp" "$now" host/dist/wasm_pki_server.wasm
      fi
      echo "server module: host/dist/wasm_pki_server.wasm, sha256 $(sha256sum host/dist/wasm_pki_server.wasm | cut -d' ' -f1)"
      ;;
    *) echo "build-pkg.sh: unknown option $arg (--test-hooks, --server)" >&2; exit 2 ;;
  esac
done
