#!/usr/bin/env bash
# Group-by benchmark (issue 19): the reference CSV (shared/bench/gen_csv.py) imported by a
# local cloud of WORKERS, then grouped by c10 (10 levels), c1000 (1,000) and i2 (2,000
# integers) with count, sum, mean, min and max of f1, timed at the REST call (the result a
# frame, as users get it); side by side with duckdb and polars on the same file in memory.
# The high-cardinality case (1,000,000 groups) reads a second file made from the reference:
# k1m = i3 % 1000000 beside f1, which every engine imports the same way (the group-by takes
# columns, not expressions).
#   bench/groupby.sh [ROWS] [RUNS] [WORKERS]      defaults: 20000000 3 1
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-20000000}
RUNS=${2:-3}
WORKERS=${3:-1}
# shellcheck source=venv.sh
. bench/venv.sh
DATA=$(reference_csv "$ROWS")
WIDE_KEYS=bench/data/k1m$ROWS.csv
if [ ! -f "$WIDE_KEYS" ]; then
  "$BENCH_PY" - "$DATA" "$WIDE_KEYS" <<'PY'
import sys, pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as csv
t = csv.read_csv(sys.argv[1], convert_options=csv.ConvertOptions(include_columns=["i3", "f1"]))
csv.write_csv(pa.table({"k1m": pc.subtract(t["i3"], pc.multiply(pc.divide(t["i3"], 1000000), 1000000)), "f1": t["f1"]}), sys.argv[2] + ".tmp")
PY
  mv "$WIDE_KEYS.tmp" "$WIDE_KEYS"
fi
build_release
start_cloud "$WORKERS"
echo "file: $DATA ($(stat -c %s "$DATA") bytes), $(nproc) cores, $WORKERS worker(s), runs: $RUNS"
"$BENCH_PY" - "$LEADER" "$DATA" "$RUNS" "$WIDE_KEYS" <<'PY'
import json, os, statistics, sys, time, urllib.error, urllib.request
leader, path, runs, wide_keys = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def call(method, url, body=None):
    req = urllib.request.Request(leader + url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ["EDDY_TOKEN"]})
    try:
        with urllib.request.urlopen(req, timeout=3600) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {url}: {e.code}: {e.read().decode()}")

def imported(path, frame):
    key = call("POST", "/3/ImportFiles", {"path": path, "destination_frame": frame})["job"]["key"]
    while (job := call("GET", f"/3/Jobs/{key}")["jobs"][0])["status"] == "RUNNING":
        time.sleep(0.2)
    assert job["status"] == "DONE", job

imported(path, "ref.hex")
imported(wide_keys, "k1m.hex")
aggs = [{"op": op, "column": "f1"} for op in ("count", "sum", "mean", "min", "max")]
import duckdb, polars as pl
con = duckdb.connect()
con.execute(f"CREATE TABLE ref AS SELECT * FROM read_csv('{path}')")
con.execute(f"CREATE TABLE k1m AS SELECT * FROM read_csv('{wide_keys}')")
frames = {"ref": pl.read_csv(path), "k1m": pl.read_csv(wide_keys)}
for table, by in (("ref", "c10"), ("ref", "c1000"), ("ref", "i2"), ("k1m", "k1m")):
    df = frames[table]
    times = {"eddy": [], "duckdb": [], "polars": []}
    for run in range(runs):
        t = time.perf_counter()
        info = call("POST", f"/3/Frames/{table}.hex/groupby", {"by": [by], "aggs": aggs, "destination_frame": f"g_{by}_{run}"})
        times["eddy"].append(time.perf_counter() - t)
        groups = info["frame"]["rows"]
        t = time.perf_counter()
        con.sql(f"SELECT {by}, count(f1), sum(f1), avg(f1), min(f1), max(f1), count(*) FROM {table} GROUP BY {by}").to_arrow_table()
        times["duckdb"].append(time.perf_counter() - t)
        t = time.perf_counter()
        df.group_by(by).agg(pl.col("f1").count().alias("n"), pl.col("f1").sum().alias("s"), pl.col("f1").mean().alias("m"),
                            pl.col("f1").min().alias("lo"), pl.col("f1").max().alias("hi"), pl.len())
        times["polars"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"by={by} groups={groups} " + " ".join(f"{k}_s={v:.3f}" for k, v in med.items())
          + f" eddy/duckdb={med['eddy'] / med['duckdb']:.2f} eddy/polars={med['eddy'] / med['polars']:.2f}")
PY
