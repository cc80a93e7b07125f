#!/usr/bin/env bash
# Loss of a worker (issue 15): a local cloud of 3 workers imports the reference CSV, then one
# worker (not the one asked) is killed with SIGKILL, or stopped with SIGSTOP. Measured from the
# signal: detection (the survivors list it under lost_nodes in GET /3/Cloud), recovery (the
# frame's summary answers again, checked equal to the one before), the job that read the lost
# chunks again, and, with a replacement, the cloud whole again (3 workers). Polled every 50 ms.
#   bench/survival.sh [ROWS] [RUNS] [HEARTBEAT_TIMEOUT]     defaults: 5000000 3 10s
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-5000000}
RUNS=${2:-3}
TIMEOUT=${3:-10s}
# shellcheck source=venv.sh
. bench/venv.sh
DATA=$(reference_csv "$ROWS")
build_release
echo "file: $DATA ($(stat -c %s "$DATA") bytes), $(nproc) cores, 3 workers, heartbeat timeout $TIMEOUT, runs: $RUNS"
"$BENCH_PY" - "$EDDY_RELEASE" "$DATA" "$RUNS" "$TIMEOUT" <<'PY'
import json, os, signal, statistics, subprocess, sys, tempfile, time, urllib.error, urllib.request
release, path, runs, timeout = sys.argv[1], os.path.abspath(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def start(restarts):
    work = tempfile.mkdtemp()
    notify = os.path.join(work, "leader")
    args = [f"{release}/eddy-driver", "local", "--nodes", "3", "--port", "0", "--memory", "3g", "--heartbeat-timeout", timeout,
            "--worker-restarts", str(restarts), "--notify", notify, "--log-dir", os.path.join(work, "logs")]
    driver = subprocess.Popen(args, stdout=open(os.path.join(work, "driver.log"), "w"), stderr=subprocess.STDOUT)
    for _ in range(1200):
        if os.path.exists(notify) and "token=" in open(notify).read():
            break
        time.sleep(0.1)
    lines = open(notify).read().split("\n")
    token = next(l[len("token="):] for l in lines if l.startswith("token="))
    return driver, "http://" + lines[0].strip(), token

def call(base, token, method, url, body=None):
    req = urllib.request.Request(base + url, data=None if body is None else json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")

def one_run(kind, restarts):
    driver, base, token = start(restarts)
    try:
        _, r = call(base, token, "POST", "/3/ImportFiles", {"path": path, "destination_frame": "ref.hex"})
        key = r["job"]["key"]
        while (job := call(base, token, "GET", f"/3/Jobs/{key}")[1]["jobs"][0])["status"] == "RUNNING":
            time.sleep(0.2)
        assert job["status"] == "DONE", job
        before = call(base, token, "GET", "/3/Frames/ref.hex/summary")[1]["columns"]
        cloud = call(base, token, "GET", "/3/Cloud")[1]
        victim = next(n for n in cloud["nodes"] if "http://" + n["ip_port"] != base)
        t0 = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
        detected = recovered = whole = None
        while time.monotonic() - t0 < 300 and (recovered is None or (restarts and whole is None)):
            now = time.monotonic() - t0
            if detected is None:
                c = call(base, token, "GET", "/3/Cloud")[1]
                if any(l["ip_port"] == victim["ip_port"] for l in c.get("lost_nodes", [])):
                    detected = now
            if detected is not None and recovered is None:
                status, s = call(base, token, "GET", "/3/Frames/ref.hex/summary")
                if status == 200:
                    assert s["columns"] == before, "the summary after recovery differs"
                    recovered = time.monotonic() - t0
            if restarts and whole is None:
                c = call(base, token, "GET", "/3/Cloud")[1]
                if c["cloud_size"] == 3 and c["consensus"] and all(n["pid"] != victim["pid"] for n in c["nodes"]):
                    whole = time.monotonic() - t0
            time.sleep(0.05)
        jobs = call(base, token, "GET", "/3/Jobs")[1]["jobs"]
        reread = next((j for j in jobs if j["description"].startswith("Read ")), {})
        if kind == "stop":
            os.kill(victim["pid"], signal.SIGCONT)
        return detected, recovered, reread.get("msec", 0) / 1000, reread.get("description", ""), whole
    finally:
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=120)

for kind, restarts in (("kill", 0), ("stop", 0), ("kill", 6)):
    results = [one_run(kind, restarts) for _ in range(runs)]
    label = {"kill": "SIGKILL", "stop": "SIGSTOP"}[kind] + (", a new worker started in its place" if restarts else "")
    print(f"{label}: {results[0][3]}")
    for name, i in (("detected (lost_nodes)", 0), ("frame answers again", 1), ("re-read job", 2)) + ((("cloud of 3 again", 4),) if restarts else ()):
        values = [r[i] for r in results]
        print(f"  {name:24} median {statistics.median(values):6.2f} s  runs {' '.join(f'{v:.2f}' for v in values)}")
PY
