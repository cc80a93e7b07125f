#!/usr/bin/env bash
# The web console in a real browser: headless Chromium (Debian's) driven by Playwright
# (playwright-core from npm, which downloads no browser of its own) against a real local
# cloud of the binaries in target/debug (or EDDY_BIN_DIR). Screenshots of every page go to
# target/ui-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null 2>&1 || { echo "node is not installed: the web console tests need Node.js 18 or newer" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "npm is not installed: the web console tests install playwright-core with it" >&2; exit 1; }
# shellcheck source=lib/chromium.sh
. scripts/lib/chromium.sh
: "${EDDY_CHROMIUM:=$(ensure_chromium)}"
export EDDY_CHROMIUM
: "${EDDY_BIN_DIR:=$PWD/target/debug}"
export EDDY_BIN_DIR
[ -x "$EDDY_BIN_DIR/eddy-driver" ] || { echo "no eddy-driver in $EDDY_BIN_DIR: cargo build --workspace --bins first" >&2; exit 1; }

# The lock file pins every package; install again only when it changed.
if [ ! -f tests/ui/node_modules/.package-lock.json ] || [ tests/ui/package-lock.json -nt tests/ui/node_modules/.package-lock.json ]; then
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi
mkdir -p target/ui-screenshots
node --test --test-reporter=spec tests/ui/
