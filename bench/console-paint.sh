#!/usr/bin/env bash
# How fast the web console shows a big cloud: N workers (default 32) on this machine, the
# cloud and logs pages loaded 5 times each in headless Chromium. Usage: bench/console-paint.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/lib/chromium.sh
. scripts/lib/chromium.sh
: "${EDDY_CHROMIUM:=$(ensure_chromium)}"
: "${EDDY_BIN_DIR:=$PWD/target/release}"
export EDDY_CHROMIUM EDDY_BIN_DIR
[ -x "$EDDY_BIN_DIR/eddy-driver" ] || cargo build --release --bins --locked
[ -d tests/ui/node_modules/playwright-core ] || (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
node tests/ui/first-paint.mjs "${1:-32}" 5
