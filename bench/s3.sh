#!/usr/bin/env bash
# S3 import benchmark: a local SeaweedFS S3 server on 127.0.0.1, the reference CSV of ROWS
# rows put there by Eddy itself (import from disk, export to s3://), then imported back from
# S3 by a fresh local cloud. In the same run, what the server itself serves: the object read
# whole by a plain parallel ranged-GET reader (pyarrow's S3 filesystem, 8 MiB ranges on 8
# threads), and pyarrow's read_csv from S3.    bench/s3.sh [ROWS] [RUNS]    defaults: 5000000 3
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-5000000}
RUNS=${2:-3}
# shellcheck source=venv.sh
. bench/venv.sh
DATA=$(reference_csv "$ROWS")
build_release
WORK=$(mktemp -d)
# weed runs in a process group of its own (the `weed` on PATH may be a wrapper that starts the
# server as a child); the whole group is stopped, forcibly if it has not exited in 5 s.
stop_all() {
  [ -n "${CLOUD:-}" ] && kill "$CLOUD" 2>/dev/null || true
  if [ -n "${WEED:-}" ]; then
    kill -TERM -- "-$WEED" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$WEED" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$WEED" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_all EXIT
ports=($(python3 -c "import socket;l=[socket.socket() for _ in range(10)];[s.bind(('127.0.0.1',0)) for s in l];print(' '.join(str(s.getsockname()[1]) for s in l))"))
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 EDDY_S3_ENDPOINT=http://127.0.0.1:${ports[6]}
echo '{"identities":[{"name":"admin","credentials":[{"accessKey":"benchkey","secretKey":"benchsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' > "$WORK/ids.json"
setsid weed mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=${ports[0]} -master.port.grpc=${ports[1]} \
  -volume.port=${ports[2]} -volume.port.grpc=${ports[3]} -filer.port=${ports[4]} -filer.port.grpc=${ports[5]} \
  -s3.port=${ports[6]} -s3.port.grpc=${ports[7]} -admin.port=${ports[8]} -admin.port.grpc=${ports[9]} \
  -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$WORK/ids.json" -bucket=bench > "$WORK/weed.log" 2>&1 &
WEED=$!
for _ in $(seq 60); do curl -s -o /dev/null "$EDDY_S3_ENDPOINT" && break; sleep 0.5; done
# Upload through Eddy: import from disk, export one CSV file to S3.
"$EDDY_RELEASE"/eddy-driver local --nodes 2 --port 0 --memory 4g --notify "$WORK/leader" > "$WORK/cloud.log" 2>&1 &
CLOUD=$!
for _ in $(seq 120); do grep -q '^token=' "$WORK/leader" 2>/dev/null && break; sleep 0.5; done
# The notify file: the leader's ip:port, then the REST access token.
LEADER=http://$(head -1 "$WORK/leader")
AUTH="Authorization: Bearer $(sed -n 's/^token=//p' "$WORK/leader")"
"$EDDY_RELEASE"/eddy-driver import --cloud "$LEADER" --token "${AUTH#*Bearer }" "$PWD/$DATA" > /dev/null
FRAME=$(curl -s -H "$AUTH" "$LEADER/3/Frames" | python3 -c "import json,sys; print(json.load(sys.stdin)['frames'][0]['frame_id'])")
curl -s -X POST -H "$AUTH" -H 'content-type: application/json' -d '{"path":"s3://bench/data.csv","format":"csv","single_file":true}' "$LEADER/3/Frames/$FRAME/export" > /dev/null
curl -s -X POST -H "$AUTH" "$LEADER/3/Shutdown" > /dev/null; wait $CLOUD || true
for run in $(seq "$RUNS"); do
  "$EDDY_RELEASE"/eddy-driver local --nodes 2 --port 0 --memory 4g --check --import s3://bench/data.csv 2>/dev/null | grep '^Imported' | sed "s/^/s3 run=$run: /"
done
for run in $(seq "$RUNS"); do
  "$EDDY_RELEASE"/eddy-driver local --nodes 2 --port 0 --memory 4g --check --import "$DATA" 2>/dev/null | grep '^Imported' | sed "s/^/local run=$run: /"
done
"$BENCH_PY" - "$RUNS" <<'PY'
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
import pyarrow.csv as csv
from pyarrow import fs
runs = int(sys.argv[1])
s3 = fs.S3FileSystem(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                     region=os.environ["AWS_REGION"], endpoint_override=os.environ["EDDY_S3_ENDPOINT"], scheme="http")
path = "bench/data.csv"
size = s3.get_file_info(path).size
RANGE = 8 << 20
def read_at(offset):
    with s3.open_input_file(path) as f:
        return len(f.read_at(min(RANGE, size - offset), offset))
for run in range(1, runs + 1):
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        got = sum(pool.map(read_at, range(0, size, RANGE)))
    s = time.perf_counter() - t
    assert got == size, (got, size)
    print(f"ranged GETs run={run}: {size} bytes in {s:.2f} s = {size / s / 1e6:.0f} MB/s")
for run in range(1, runs + 1):
    t = time.perf_counter()
    with s3.open_input_stream(path) as f:
        rows = csv.read_csv(f).num_rows
    s = time.perf_counter() - t
    print(f"pyarrow read_csv from S3 run={run}: {rows} rows in {s:.2f} s = {size / s / 1e6:.0f} MB/s")
PY
