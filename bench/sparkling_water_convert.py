"""Sparkling Water's side of bench/spark_convert.py: H2OContext.getOrCreate, asH2OFrame and
asSparkFrame + full read of the same 5 M x 10 doubles, on pyspark 3.5 local-cluster[2,1,1024].
Runs in its own venv (Sparkling Water needs pyspark 3.5):

    python3 -m venv /tmp/sw-venv && /tmp/sw-venv/bin/pip install "pyspark==3.5.*" h2o-pysparkling-3.5
    SPARK_LOCAL_IP=127.0.0.1 /tmp/sw-venv/bin/python bench/sparkling_water_convert.py [RUNS] [ROWS]
"""

import statistics
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000_000
columns, partitions = 10, 4
mb = rows * columns * 8 / 1e6
opens = " ".join(
    f"--add-opens=java.base/{p}=ALL-UNNAMED"
    for p in ["java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util", "java.util.concurrent", "sun.nio.ch"]
) + " " + " ".join(
    f"--add-exports=java.base/{p}=ALL-UNNAMED" for p in ["sun.net.www.protocol.http", "sun.net.www.protocol.https", "sun.net.www", "sun.nio.ch", "sun.security.action"]
)
spark = (
    SparkSession.builder.master("local-cluster[2,1,1024]")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    .config("spark.driver.memory", "2g")
    .config("spark.driver.extraJavaOptions", opens)
    .config("spark.executor.extraJavaOptions", opens)
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
df = spark.range(rows, numPartitions=partitions).select(*[F.rand(seed=k).alias(f"x{k}") for k in range(columns)]).cache()
df.count()
print(f"{rows} rows x {columns} doubles ({mb:.0f} MB), {partitions} partitions, cached")

from pysparkling import H2OContext  # noqa: E402

t = time.time()
hc = H2OContext.getOrCreate()
print(f"H2OContext.getOrCreate: {time.time() - t:.2f} s")


def timed(what, f):
    seconds = []
    for _ in range(runs):
        t = time.time()
        f()
        seconds.append(time.time() - t)
    median = statistics.median(seconds)
    print(f"{what}: median {median:.2f} s ({mb / median:.0f} MB/s), best {min(seconds):.2f} s ({mb / min(seconds):.0f} MB/s) of {runs}")


frames = []
timed("asH2OFrame", lambda: frames.append(hc.asH2OFrame(df)))
timed("asSparkFrame + full read (noop sink)", lambda: hc.asSparkFrame(frames[-1]).write.format("noop").mode("overwrite").save())
hc.stop()
