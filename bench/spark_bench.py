"""What the Spark benchmarks share: a local-cluster session on 127.0.0.1, the cached source
DataFrame of random doubles, and a timer that prints median and best as MB/s. Imported by
the scripts beside it (run from the repository root; Python puts bench/ on the path)."""

import statistics
import time


def session(extra_conf=None, master="local-cluster[2,1,1024]"):
    """A SparkSession on `master` (2 executors by default), quiet, with `extra_conf` applied."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
    )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def random_doubles(spark, rows, columns, partitions):
    """A cached DataFrame of `rows` x `columns` random doubles (x0, x1, ...), materialised."""
    from pyspark.sql import functions as F

    df = spark.range(rows, numPartitions=partitions).select(*[F.rand(seed=k).alias(f"x{k}") for k in range(columns)]).cache()
    t = time.time()
    df.count()
    print(f"{rows} rows x {columns} doubles ({rows * columns * 8 / 1e6:.0f} MB of values), {partitions} partitions, cached in {time.time() - t:.2f} s")
    return df


def timed(what, f, runs, mb):
    """Runs `f` `runs` times; prints and returns the median seconds."""
    seconds = []
    for _ in range(runs):
        t = time.time()
        f()
        seconds.append(time.time() - t)
    best, median = min(seconds), statistics.median(seconds)
    print(f"{what}: median {median:.2f} s ({mb / median:.0f} MB/s), best {best:.2f} s ({mb / best:.0f} MB/s) of {runs}")
    return median
