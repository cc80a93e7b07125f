"""Loss of a Spark executor (issue 15): an EddyContext on real Spark (pyspark
local-cluster[3,1,1024], a cloud of 3 workers) imports a CSV, then one executor's JVM is killed
with SIGKILL. Measured from the kill, polled every 50 ms: the worker gone (it ends with its
executor), the cloud listing it lost, Spark's executor in its place, the new worker in the
cloud, and the frame's summary answering again (checked equal to the one before).

    cargo build --release --bins
    SPARK_LOCAL_IP=127.0.0.1 EDDY_BIN_DIR=target/release PYTHONPATH=python \\
        target/spark-venv/bin/python bench/spark_survival.py [ROWS] [RUNS] [HEARTBEAT_TIMEOUT]
"""

import os
import signal
import statistics
import sys
import tempfile
import time

from spark_bench import session

from eddy.client import EddyError
from eddy.spark import EddyContext

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
timeout = sys.argv[3] if len(sys.argv) > 3 else "10s"

work = tempfile.mkdtemp()
path = os.path.join(work, "data.csv")
with open(path, "w") as f:
    f.write("id,value,kind\n")
    f.writelines(f"{i},{(i * 7919) % 100_003 * 0.25},{'abc'[i % 3]}\n" for i in range(rows))
size = os.path.getsize(path)

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
spark = session(master="local-cluster[3,1,1024]")
sc = spark.sparkContext
print(f"file: {rows} rows, {size} bytes; {os.cpu_count()} cores; 3 executors; heartbeat timeout {timeout}; runs: {runs}")


def live_executors(ec):
    return {e for e, _ in ec._executors()}


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def summary_or_none(ec):
    try:
        return ec.summary("data.hex")
    except EddyError:
        return None


results = []
for run in range(1, runs + 1):
    while len(sc._jsc.sc().statusTracker().getExecutorInfos()) < 4:  # 3 and the driver
        time.sleep(0.1)
    ec = EddyContext.get_or_create(spark, port=0, memory="1g", heartbeat_timeout=timeout)
    try:
        ec.import_file(path, name="data.hex", split_bytes=max(1 << 20, size // 12), progress=False)
        before = ec.summary("data.hex")
        victim = ec.workers[-1]
        executors = live_executors(ec)
        marks = {}
        t0 = time.time()
        os.kill(victim["executor_pid"], signal.SIGKILL)
        deadline = t0 + 180
        while time.time() < deadline and len(marks) < 5:
            now = time.time() - t0
            if "worker ended" not in marks and not alive(victim["pid"]):
                marks["worker ended"] = now
            if "detected" not in marks and ec.status()["lost"]:
                marks["detected"] = now
            if "new executor" not in marks and live_executors(ec) - executors:
                marks["new executor"] = now
            if "new worker in the cloud" not in marks and ec.replacements:
                marks["new worker in the cloud"] = now
            if "frame answers again" not in marks and "detected" in marks:
                got = summary_or_none(ec)
                if got is not None:
                    assert got == before, "the summary changed"
                    marks["frame answers again"] = now
            time.sleep(0.05)
        if len(marks) < 5:
            raise SystemExit(f"run {run}: not everything happened within 180 s: {marks}; {ec.replacement_error}")
        results.append(marks)
        print(f"run {run}: " + ", ".join(f"{k} {v:.2f} s" for k, v in marks.items()))
    finally:
        ec.stop()

print("medians: " + ", ".join(f"{k} {statistics.median(r[k] for r in results):.2f} s" for k in results[0]))
spark.stop()
