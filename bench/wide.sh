#!/usr/bin/env bash
# Wide-file import benchmark (issue 20): COLUMNS integer columns x ROWS rows, as feature
# tables are, imported by a local cloud of 2 workers, side by side with pyarrow, polars and
# duckdb reading the same file. The import time should grow with the bytes, not with the
# square of the columns: the run prints the time for 1,000 and for COLUMNS columns.
#   bench/wide.sh [COLUMNS] [ROWS] [RUNS]      defaults: 5000 50 3
set -euo pipefail
cd "$(dirname "$0")/.."
COLUMNS=${1:-5000}
ROWS=${2:-50}
RUNS=${3:-3}
# shellcheck source=venv.sh
. bench/venv.sh
mkdir -p bench/data
build_release

for cols in 1000 "$COLUMNS"; do
  DATA=bench/data/wide${cols}x${ROWS}.csv
  "$BENCH_PY" - "$DATA" "$cols" "$ROWS" <<'PY'
import sys
path, cols, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    f.write(",".join(f"c{c}" for c in range(cols)) + "\n")
    for r in range(rows):
        f.write(",".join(str((r * 7919 + c * 104729) % 1000) for c in range(cols)) + "\n")
PY
  SIZE=$(stat -c %s "$DATA")
  echo "file: $DATA ($SIZE bytes, $cols columns x $ROWS rows), $(nproc) cores, runs: $RUNS"
  : >/tmp/eddy-wide.txt
  for run in $(seq "$RUNS"); do
    line=$("$EDDY_RELEASE"/eddy-driver local --nodes 2 --port 0 --memory 2g --check --import "$DATA" 2>/dev/null | grep '^Imported')
    secs=$(echo "$line" | sed -E 's/.* in ([0-9.]+) s .*/\1/')
    echo "eddy columns=$cols run=$run import_s=$secs"
    echo "$secs" >>/tmp/eddy-wide.txt
  done
  EDDY_S=$(median </tmp/eddy-wide.txt)
  echo "eddy columns=$cols MEDIAN import_s=$EDDY_S"
  "$BENCH_PY" - "$DATA" "$RUNS" "$EDDY_S" <<'PY'
import statistics, sys, time
path, runs, eddy = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
import duckdb, polars as pl, pyarrow.csv as pc
readers = {
    "pyarrow": lambda: pc.read_csv(path),
    "polars": lambda: pl.read_csv(path),
    "duckdb": lambda: duckdb.sql(f"SELECT * FROM read_csv('{path}')").to_arrow_table(),
}
for name, read in readers.items():
    times = []
    for _ in range(runs):
        t = time.perf_counter(); read(); times.append(time.perf_counter() - t)
    m = statistics.median(times)
    print(f"{name} MEDIAN s={m:.3f} eddy/{name} time ratio={eddy / m:.2f}")
PY
done
