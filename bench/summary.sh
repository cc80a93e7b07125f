#!/usr/bin/env bash
# Summary benchmark (issue 19): the reference CSV imported by a local cloud of WORKERS, then
# `GET /3/Frames/ref.hex/summary` timed as a user calls it: with the default 20-bin
# histograms and with `bins=0`; side by side with polars' describe() and duckdb's SUMMARIZE
# of the same file in memory.
#   bench/summary.sh [ROWS] [RUNS] [WORKERS]      defaults: 20000000 5 2
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-20000000}
RUNS=${2:-5}
WORKERS=${3:-2}
# shellcheck source=venv.sh
. bench/venv.sh
DATA=$(reference_csv "$ROWS")
build_release
start_cloud "$WORKERS"
echo "file: $DATA ($(stat -c %s "$DATA") bytes), $(nproc) cores, $WORKERS worker(s), runs: $RUNS"
"$BENCH_PY" - "$LEADER" "$DATA" "$RUNS" <<'PY'
import json, os, statistics, sys, time, urllib.request
leader, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def call(method, url, body=None):
    req = urllib.request.Request(leader + url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["EDDY_TOKEN"]})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())

key = call("POST", "/3/ImportFiles", {"path": os.path.abspath(path), "destination_frame": "ref.hex"})["job"]["key"]
while (job := call("GET", f"/3/Jobs/{key}")["jobs"][0])["status"] == "RUNNING":
    time.sleep(0.2)
assert job["status"] == "DONE", job

def timed(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return statistics.median(times), times

import duckdb, polars as pl
df = pl.read_csv(path)
con = duckdb.connect()
con.execute(f"CREATE TABLE ref AS SELECT * FROM read_csv('{path}')")
results = {
    "eddy_20_bins": timed(lambda: call("GET", "/3/Frames/ref.hex/summary"), runs),
    "eddy_no_bins": timed(lambda: call("GET", "/3/Frames/ref.hex/summary?bins=0"), runs),
    "polars_describe": timed(lambda: df.describe(), runs),
    "duckdb_summarize": timed(lambda: con.sql("SUMMARIZE ref").fetchall(), 1),
}
for name, (median, times) in results.items():
    print(f"{name}: median {median:.3f} s (runs: {', '.join(f'{t:.3f}' for t in times)})")
print(f"eddy_20_bins/polars_describe={results['eddy_20_bins'][0] / results['polars_describe'][0]:.2f}")
PY
