"""Spark DataFrame <-> Eddy frame conversion throughput: 5 M rows x 10 double columns (400 MB
of values), against real Spark (pyspark local-cluster[2,1,1024]) on this machine. Prints the
Spark-only costs of the same data paths beside ours, so the ratio to Spark itself is visible.

    cargo build --release --bins
    EDDY_BIN_DIR=target/release PYTHONPATH=python target/spark-venv/bin/python bench/spark_convert.py [RUNS] [ROWS] [PARTITIONS]

With the connector's jar (EDDY_SPARK_JAR, default target/spark-jvm/eddy-spark.jar) both data
paths run in the same session: "python" (mapInArrow and Flight) and "jvm" (the jar's
DataSource V2 tasks). bench/spark_convert.sh runs this and Sparkling Water one after the other.
"""

import os
import sys

from pyspark.sql import functions as F
from spark_bench import random_doubles, session, timed

from eddy.spark import EddyContext

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000_000
partitions = int(sys.argv[3]) if len(sys.argv) > 3 else 4
columns = 10
mb = rows * columns * 8 / 1e6

# The JVM connector's jar (scripts/lib/spark-jar.sh builds it): with it both paths run, side by side.
jar = os.environ.get("EDDY_SPARK_JAR", "target/spark-jvm/eddy-spark.jar")
jar = os.path.abspath(jar) if os.path.exists(jar) else None
spark = session({"spark.jars": jar} if jar else None)
batch_rows = os.environ.get("ARROW_BATCH_ROWS")
if batch_rows:
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", batch_rows)
print(f"Arrow batches of {spark.conf.get('spark.sql.execution.arrow.maxRecordsPerBatch')} rows")
df = random_doubles(spark, rows, columns, partitions)


def drain(batches):
    n = 0
    for b in batches:
        n += b.num_rows
    import pyarrow as pa

    yield pa.RecordBatch.from_arrays([pa.array([n])], names=["n"])


# What Spark itself costs: its rows to Arrow into Python workers, and a full read of a DataFrame.
timed("Spark alone: mapInArrow that only drains its input", lambda: df.mapInArrow(drain, "n long").collect(), runs, mb)
noop_median = timed("Spark alone: full read of the cached DataFrame (noop sink)", lambda: df.write.format("noop").mode("overwrite").save(), runs, mb)


def made_in_python(_):
    import numpy as np
    import pyarrow as pa

    per_task = rows // partitions
    step = 10_000
    block = pa.RecordBatch.from_arrays([pa.array(np.random.default_rng(k).random(step)) for k in range(columns)], names=[f"x{k}" for k in range(columns)])
    for _ in range(per_task // step):
        yield block


schema = ", ".join(f"x{k} double" for k in range(columns))
timed(
    "Spark alone: mapInArrow yielding ready batches + full read (noop sink)",
    lambda: spark.range(partitions, numPartitions=partitions).mapInArrow(made_in_python, schema).write.format("noop").mode("overwrite").save(),
    runs,
    mb,
)

ec = EddyContext.get_or_create(spark, port=0, memory="1500m")
paths = ["python", "jvm"] if jar else ["python"]
rates = {}
for path in paths:
    ec.data_path = path
    frames = []
    to_median = timed(f"as_frame [{path}]", lambda: frames.append(ec.as_frame(df)), runs, mb)
    print(f"  last: {ec.last_conversion}")
    frame = frames[-1]
    back_median = timed(
        f"as_spark_frame + full read (noop sink) [{path}]",
        lambda: ec.as_spark_frame(frame).write.format("noop").mode("overwrite").save(),
        runs,
        mb,
    )
    check = ec.as_spark_frame(frame).agg(F.sum("x0").alias("s"), F.count("*").alias("n")).first()
    want = df.agg(F.sum("x0").alias("s"), F.count("*").alias("n")).first()
    print(f"  check [{path}]: rows {check['n']} (Spark {want['n']}), sum(x0) {check['s']:.6f} (Spark {want['s']:.6f})")
    rates[path] = (mb / to_median, mb / back_median)
    for f in frames:
        ec.delete(f)
noop_rate = mb / noop_median
for path, (to_rate, back_rate) in rates.items():
    print(
        f"[{path}] as_frame {to_rate:.0f} MB/s = {to_rate / 67:.1f}x Sparkling Water's 67 (target 335), "
        f"{to_rate / noop_rate:.0%} of Spark's noop sink; "
        f"as_spark_frame + read {back_rate:.0f} MB/s = {back_rate / 130:.1f}x Sparkling Water's 130 (target 650), "
        f"{back_rate / noop_rate:.0%} of Spark's noop sink"
    )
ec.stop()
spark.stop()
