"""A Spark application for spark-submit: attach Eddy, send a DataFrame to a frame and back,
summarise it, stop. Prints one line `EDDY-RESULT {json}` for the test that submitted it, and
with an argument (a directory URL, e.g. on HDFS) also writes that line there as a text file:
in YARN's cluster deploy mode the driver's output stays in its container."""

import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from eddy.spark import EddyContext

spark = SparkSession.builder.appName("eddy-spark-submit-test").getOrCreate()
ec = EddyContext.get_or_create(spark, port=0, memory="256m", heartbeat_timeout="3s", timeout=120)
try:
    i = F.col("id")
    df = spark.range(200_000, numPartitions=4).select(
        i,
        (i % 1000 / 8).alias("x"),
        F.concat(F.lit("level_"), (i % 5).cast("string")).alias("c"),
        F.timestamp_seconds(i + 1_600_000_000).alias("t"),
    )
    frame = ec.as_frame(df, categorical=["c"])
    summary = {c["label"]: c for c in ec.summary(frame)}
    back = ec.as_spark_frame(frame)
    expected = df.agg(F.mean("x").alias("mean"), F.stddev("x").alias("sd")).first()
    result = {
        "master": spark.sparkContext.master,
        "app_id": spark.sparkContext.applicationId,
        "deploy_mode": spark.sparkContext.getConf().get("spark.submit.deployMode", "client"),
        "cloud_size": ec.cloud()["cloud_size"],
        "executors": sorted({w["executor"] for w in ec.workers}),
        "worker_pids": [w["pid"] for w in ec.workers],
        "rows": back.count(),
        "missing_from_back": df.exceptAll(back).count(),
        "extra_in_back": back.exceptAll(df).count(),
        "local_puts": ec.last_conversion["local_chunks"],
        "chunks": ec.last_conversion["chunks"],
        "read_locality": ec.last_read_locality,
        "x_mean": summary["x"]["mean"],
        "x_sd": summary["x"]["sd"],
        "spark_mean": expected["mean"],
        "spark_sd": expected["sd"],
        "c_cardinality": summary["c"]["cardinality"],
    }
    if len(sys.argv) > 1:
        spark.sparkContext.parallelize(["EDDY-RESULT " + json.dumps(result)], 1).saveAsTextFile(sys.argv[1])
finally:
    ec.stop()
    spark.stop()
print("EDDY-RESULT " + json.dumps(result), flush=True)
