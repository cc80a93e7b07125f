"""Sparkling Water's side of bench/spark_convert.py: H2OContext.getOrCreate, asH2OFrame and
asSparkFrame + full read of the same 5 M x 10 doubles, on pyspark 3.5 local-cluster[2,1,1024].
Runs in its own venv (Sparkling Water needs pyspark 3.5):

    python3 -m venv /tmp/sw-venv && /tmp/sw-venv/bin/pip install "pyspark==3.5.*" h2o-pysparkling-3.5
    SPARK_LOCAL_IP=127.0.0.1 /tmp/sw-venv/bin/python bench/sparkling_water_convert.py [RUNS] [ROWS]
"""

import sys
import time

from spark_bench import random_doubles, session, timed

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
spark = session({"spark.driver.extraJavaOptions": opens, "spark.executor.extraJavaOptions": opens})
df = random_doubles(spark, rows, columns, partitions)

from pysparkling import H2OContext  # noqa: E402

t = time.time()
hc = H2OContext.getOrCreate()
print(f"H2OContext.getOrCreate: {time.time() - t:.2f} s")

frames = []
timed("asH2OFrame", lambda: frames.append(hc.asH2OFrame(df)), runs, mb)
timed("asSparkFrame + full read (noop sink)", lambda: hc.asSparkFrame(frames[-1]).write.format("noop").mode("overwrite").save(), runs, mb)
hc.stop()
