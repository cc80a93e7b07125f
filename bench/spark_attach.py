"""Time from EddyContext.get_or_create (executors already up) to a formed cloud, against real
Spark (pyspark local-cluster[2,1,1024]) on this machine.

    cargo build --release --bins
    EDDY_BIN_DIR=target/release PYTHONPATH=python target/spark-venv/bin/python bench/spark_attach.py [RUNS]
"""

import sys
import time

from spark_bench import session

from eddy.spark import EddyContext

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
t0 = time.time()
spark = session()
sc = spark.sparkContext
while len(sc._jsc.sc().statusTracker().getExecutorInfos()) < 3:
    time.sleep(0.05)
print(f"Spark session with 2 executors: {time.time() - t0:.2f} s")
# A warm-up job, so the first measurement does not pay for starting Python workers once.
sc.parallelize(range(2), 2).count()
for run in range(1, runs + 1):
    t = time.time()
    ec = EddyContext.get_or_create(spark, port=0, memory="256m")
    ready = time.time() - t
    size = ec.cloud()["cloud_size"]
    t = time.time()
    ec.stop()
    steps = ", ".join(f"{what} {at:.3f}" for what, at in ec.timings)
    print(f"run {run}: get_or_create {ready:.3f} s (cloud of {size}; {steps}), stop {time.time() - t:.3f} s")
spark.stop()
