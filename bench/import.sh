#!/usr/bin/env bash
# Import benchmark (issue 4): the reference CSV from shared/bench/gen_csv.py (20 M rows,
# 1.89 GB) imported by a local cloud of 1 and 2 workers, side by side with pyarrow and
# polars reading the same file on the same machine. Prints one line per run and medians.
#   bench/import.sh [ROWS] [RUNS]      defaults: 20000000 3
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-20000000}
RUNS=${2:-3}
DATA=bench/data/data${ROWS}.csv
GEN=../shared/bench/gen_csv.py
mkdir -p bench/data
# shellcheck source=venv.sh
. bench/venv.sh
if [ ! -f "$DATA" ]; then
  "$BENCH_PY" "$GEN" --rows "$ROWS" --seed 42 --out "$DATA" --sha256
fi
build_release
SIZE=$(stat -c %s "$DATA")
echo "file: $DATA ($SIZE bytes), $(nproc) cores, runs: $RUNS"
cat "$DATA" > /dev/null   # into the page cache, as for the reference figures

for nodes in 1 2; do
  : > /tmp/eddy-bench-$nodes.txt
  for run in $(seq "$RUNS"); do
    read -r secs ratio summ < <(eddy_import "$DATA" "$nodes")
    echo "eddy nodes=$nodes run=$run import_s=$secs MB/s=$(echo "$SIZE / $secs / 1000000" | bc -l | xargs printf '%.0f') memory_ratio=$ratio summary_s=$summ"
    echo "$secs $ratio $summ" >> /tmp/eddy-bench-$nodes.txt
  done
  s=$(cut -d' ' -f1 /tmp/eddy-bench-$nodes.txt | median)
  echo "eddy nodes=$nodes MEDIAN import_s=$s MB/s=$(echo "$SIZE / $s / 1000000" | bc -l | xargs printf '%.0f') memory_ratio=$(cut -d' ' -f2 /tmp/eddy-bench-$nodes.txt | median) summary_s=$(cut -d' ' -f3 /tmp/eddy-bench-$nodes.txt | median)"
done

"$BENCH_PY" - "$DATA" "$RUNS" <<'PY'
import sys, time, statistics
path, runs = sys.argv[1], int(sys.argv[2])
import os
size = os.path.getsize(path)
import pyarrow.csv as pc
times = []
for r in range(runs):
    t = time.time(); tb = pc.read_csv(path); times.append(time.time() - t)
    print(f"pyarrow run={r+1} s={times[-1]:.2f} MB/s={size/times[-1]/1e6:.0f} memory_ratio={tb.nbytes/size:.2f}")
    del tb
m = statistics.median(times)
print(f"pyarrow MEDIAN s={m:.2f} MB/s={size/m/1e6:.0f}")
try:
    import polars as pl
    times = []
    for r in range(runs):
        t = time.time(); df = pl.read_csv(path); times.append(time.time() - t)
        print(f"polars run={r+1} s={times[-1]:.2f} MB/s={size/times[-1]/1e6:.0f} memory_ratio={df.estimated_size()/size:.2f}")
        del df
    m = statistics.median(times)
    print(f"polars MEDIAN s={m:.2f} MB/s={size/m/1e6:.0f}")
except ImportError:
    print("polars not installed (pip install polars to compare)")
PY
