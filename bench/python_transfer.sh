#!/usr/bin/env bash
# Frames to and from Python against a 2-worker local cloud (release binaries, in the eddy
# wheel), side by side with pyarrow's and polars' reading of the same CSV and with Flight's
# raw DoGet rate; see bench/python_transfer.py.
#   bench/python_transfer.sh [ROWS] [RUNS]      defaults: 20000000 3
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-20000000}
RUNS=${2:-3}
# shellcheck source=venv.sh
. bench/venv.sh
# shellcheck source=../scripts/lib/wheel.sh
. scripts/lib/wheel.sh
DATA=$(reference_csv "$ROWS")
build_release
EDDY_WHEEL_BINARIES="$PWD/target/release" driver_venv_over target/bench-venv target/bench-eddy-venv
echo "file: $DATA ($(stat -c %s "$DATA") bytes), $(nproc) cores, 2 workers, runs: $RUNS"
env -u EDDY_BIN_DIR target/bench-eddy-venv/bin/python bench/python_transfer.py "$DATA" "$RUNS"
