#!/usr/bin/env bash
# Builds the release binaries and runs eddy-driver. Without arguments: a local cloud of
# three workers is formed, printed, network-tested and stopped (`local --nodes 3 --check`).
# Any arguments go to eddy-driver, e.g. `scripts/run.sh local --nodes 3`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p eddy-driver -p eddy-mapper
exec target/release/eddy-driver "$@"
