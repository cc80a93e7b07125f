#!/usr/bin/env bash
# Fetches the web console's one outside library, uPlot (charts, MIT), from the npm registry
# into node/ui/vendor/uplot, where the node embeds it (node/src/ui.rs). The files are
# committed so that a build needs no network; run this to upgrade (change UPLOT_VERSION) or
# to check that the committed files are the published ones (`scripts/vendor-ui.sh --check`).
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOT_VERSION=1.6.32
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "uplot@$UPLOT_VERSION" --silent >/dev/null && tar xzf "uplot-$UPLOT_VERSION.tgz")
for f in dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE; do
  name="$(basename "$f")"
  if [ "${1:-}" = "--check" ]; then
    cmp -s "$tmp/package/$f" "node/ui/vendor/uplot/$name" || { echo "node/ui/vendor/uplot/$name differs from uplot@$UPLOT_VERSION" >&2; exit 1; }
  else
    cp "$tmp/package/$f" "node/ui/vendor/uplot/$name"
  fi
done
echo "node/ui/vendor/uplot: uplot@$UPLOT_VERSION"
