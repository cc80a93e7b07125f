#!/usr/bin/env bash
# What internal TLS costs: the same 2-worker local cloud with `--internal-tls on` (the
# default) and `off`, side by side in one run:
# - formation: driver start to "Cloud of size 2 formed" (each node makes its certificate);
# - the driver's network test (`--check`): gRPC round trips of 1 B, 1 KiB and 1 MiB from
#   the observer to each worker, median of 5;
# - moving data between nodes: the reference CSV imported, then exported as one Parquet
#   file (`single_file`), which gathers every chunk on one node over the frame service.
#   bench/tls.sh [ROWS] [RUNS]      defaults: 2000000 3
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-2000000}
RUNS=${2:-3}
# shellcheck source=venv.sh
. bench/venv.sh
DATA=$(reference_csv "$ROWS")
build_release
echo "file: $DATA ($(stat -c %s "$DATA") bytes), $(nproc) cores, 2 workers, runs: $RUNS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for run in $(seq "$RUNS"); do
  for tls in on off; do
    # --check: form, print the network test, stop.
    start=$(date +%s.%N)
    "$EDDY_RELEASE"/eddy-driver local --nodes 2 --port 0 --memory 2g --internal-tls "$tls" --check >"$WORK/check.log" 2>&1
    end=$(date +%s.%N)
    formed=$(grep -m1 -n "formed" "$WORK/check.log" >/dev/null && echo ok)
    [ "$formed" = ok ] || { cat "$WORK/check.log"; exit 1; }
    awk -v tls="$tls" -v run="$run" -v secs="$(echo "$end - $start" | bc)" '
      / B +[0-9]+ us/ { key = $2; us[key] = (us[key] == "" ? $4 : us[key] "/" $4) }
      END { printf "run=%s tls=%s check_total_s=%.2f rtt_us(1B)=%s rtt_us(1KiB)=%s rtt_us(1MiB)=%s\n", run, tls, secs, us["1"], us["1024"], us["1048576"] }
    ' "$WORK/check.log"
    # Export: a watched cloud, the import, then one Parquet file gathered on one node.
    rm -f "$WORK/leader" "$WORK/out.parquet"
    "$EDDY_RELEASE"/eddy-driver local --nodes 2 --port 0 --memory 4g --internal-tls "$tls" --notify "$WORK/leader" >"$WORK/driver.log" 2>&1 &
    driver=$!
    for _ in $(seq 600); do grep -q '^token=' "$WORK/leader" 2>/dev/null && break; sleep 0.1; done
    "$BENCH_PY" - "http://$(head -1 "$WORK/leader")" "$(sed -n 's/^token=//p' "$WORK/leader")" "$DATA" "$WORK/out.parquet" "$tls" "$run" <<'PY'
import json, os, sys, time, urllib.request
leader, token, path, out, tls, run = sys.argv[1:]

def call(method, url, body=None):
    req = urllib.request.Request(leader + url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())

def wait(key):
    while True:
        job = call("GET", f"/3/Jobs/{key}")["jobs"][0]
        if job["status"] != "RUNNING":
            assert job["status"] == "DONE", job
            return
        time.sleep(0.05)

t = time.perf_counter()
wait(call("POST", "/3/ImportFiles", {"path": path, "destination_frame": "ref.hex"})["job"]["key"])
imported = time.perf_counter() - t
t = time.perf_counter()
answer = call("POST", "/3/Frames/ref.hex/export", {"path": out, "format": "parquet", "single_file": True})
if "job" in answer:
    wait(answer["job"]["key"])
exported = time.perf_counter() - t
print(f"run={run} tls={tls} import_s={imported:.3f} export_single_parquet_s={exported:.3f} parquet_bytes={os.path.getsize(out)}")
PY
    kill -INT "$driver"; wait "$driver" || true
  done
done
