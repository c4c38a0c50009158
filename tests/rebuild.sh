#!/usr/bin/env bash
# scripts/run.sh's build steps twice: the second must change no file in pkg/dist (content or
# modification time) and must not relink the signer, so that a second run listens within seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wasm-pki/target}"
bin="$CARGO_TARGET_DIR/release/wasm-pki"
state() { find pkg/dist "$bin" -type f -printf '%p %T@ %s\n' | sort; sha256sum pkg/dist/*; }
bash scripts/run.sh --build-only > /dev/null 2>&1
before=$(state)
t0=$(date +%s%N)
bash scripts/run.sh --build-only > /dev/null 2>&1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
after=$(state)
if [ "$before" != "$after" ]; then
  echo "FAIL: the second build changed files:"; diff <(echo "$before") <(echo "$after") || true
  exit 1
fi
echo "ok: the second build of scripts/run.sh changed nothing in pkg/dist and did not relink the signer (${ms} ms)"
