"""EddyContext against real Apache Spark (PyPI pyspark) on 127.0.0.1: a local-cluster master
with two executors of one core each, started and stopped here. Needs the eddy wheel installed
in this interpreter, not in the executors' (EDDY_EXECUTOR_PYTHON), and Java 17;
scripts/spark-test.sh sets these up."""

import decimal
import os
import signal
import sys
import time
import unittest

from pyspark.sql import SparkSession

from eddy.spark import EddyContext, EddyError


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def gone(pid):
    """Neither running nor a zombie: the process was reaped."""
    return not os.path.exists(f"/proc/{pid}")


# The executors' Python: the Spark venv, which has pyarrow but no eddy (scripts/spark-test.sh),
# as on a cluster where nothing of Eddy is installed; this process has the eddy wheel.
EXECUTOR_PYTHON = os.environ.get("EDDY_EXECUTOR_PYTHON", sys.executable)


def session(master, app, driver_host="127.0.0.1"):
    """A SparkSession whose Python workers run EXECUTOR_PYTHON, not whatever python3 is on
    the PATH."""
    os.environ["PYSPARK_PYTHON"] = EXECUTOR_PYTHON
    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.driver.host", driver_host)
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.pyspark.python", EXECUTOR_PYTHON)
        .config("spark.ui.enabled", "false")
    )
    if SPARK_JAR:
        builder = builder.config("spark.jars", SPARK_JAR)
    return builder.getOrCreate()


# The JVM connector's jar (scripts/spark-test.sh runs the tests with it and without): with it,
# conversions run in the executors' JVMs (EddyContext.data_path == "jvm").
SPARK_JAR = os.environ.get("EDDY_SPARK_JAR")
EXPECTED_PATH = "jvm" if SPARK_JAR else "python"


def decimals_and_odd_names(spark, rows=10_000, partitions=3):
    """Decimals of every width Spark has (precision up to 38, scales kept) under column names
    with dots, spaces and non-ASCII letters."""
    from pyspark.sql import functions as F

    i = F.col("id")
    big = F.lit(decimal.Decimal("12345678901234567890.123456789012345678")).cast("decimal(38,18)")
    return spark.range(rows, numPartitions=partitions).select(
        i.alias("a.b"),
        (i * 0.5).alias("half price"),  # long * 0.5 is Spark's decimal(22,1)
        F.when(i % 7 == 0, None).otherwise((i - 5000) / 100).cast("decimal(10,2)").alias("prix à l'unité"),
        F.when(i % 3 == 0, -big).otherwise(big + i).alias("größe.名前"),
        (i.cast("decimal(38,0)") * 10**15).cast("decimal(38,0)").alias("d38_0"),  # beyond 64 bits
        F.lit(None).cast("decimal(5,5)").alias("empty dec"),
    )


def wait_until(what, timeout, predicate):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


SETTINGS = dict(port=0, memory="256m", heartbeat_timeout="3s", timeout=90)


class AttachToSpark(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spark = session("local-cluster[2,1,1024]", "eddy-attach-test")

    @classmethod
    def tearDownClass(cls):
        cls.spark.stop()

    def test_a_cloud_of_one_worker_per_executor_forms_and_stops_without_leftovers(self):
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            cloud = ec.cloud()
            self.assertEqual(cloud["cloud_size"], 2, cloud)
            self.assertTrue(cloud["cloud_healthy"], cloud)
            self.assertEqual(len({w["executor"] for w in ec.workers}), 2, ec.workers)
            self.assertIs(EddyContext.get_or_create(self.spark), ec, "a second call returns the same context")
            self.assertTrue(ec.status()["healthy"])
            # Each executor's worker reads the secret from a file only its user can read.
            secrets = [os.path.join(os.path.dirname(w["log"]), f"eddy-secret-{w['worker']}") for w in ec.workers]
            for path in secrets:
                self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, path)
        finally:
            pids = [w["pid"] for w in ec.workers]
            driver = ec._driver.pid
            ec.stop()
        wait_until("workers and observer gone", 30, lambda: not any(alive(p) for p in pids + [driver]))
        wait_until("the executors' secret files removed", 30, lambda: not any(os.path.exists(p) for p in secrets))
        self.assertFalse(ec.is_running())
        # Reaped, not zombies under the executors' Python workers.
        wait_until("the workers reaped", 30, lambda: all(gone(p) for p in pids))
        self.assertFalse(os.path.exists(ec.log_dir), "the working directory and its secret are removed")

    def test_keep_logs_keeps_the_logs_but_not_the_secret(self):
        ec = EddyContext.get_or_create(self.spark, keep_logs=True, **SETTINGS)
        try:
            self.assertEqual(ec.cloud()["cloud_size"], 2)
        finally:
            ec.stop()
        try:
            self.assertFalse(os.path.exists(os.path.join(ec.log_dir, "secret")))
            with open(ec.driver_log) as f:
                self.assertIn("worker 1 registered", f.read())
        finally:
            import shutil

            shutil.rmtree(ec.log_dir, ignore_errors=True)

    def test_decimals_and_names_with_dots_spaces_and_non_ascii_round_trip(self):
        df = decimals_and_odd_names(self.spark).cache()
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            frame = ec.as_frame(df)
            info = ec.frame_info(frame)
            self.assertEqual([c["name"] for c in info["columns"]], df.columns)
            self.assertEqual({c["type"] for c in info["columns"][1:]}, {"real"})
            back = ec.as_spark_frame(frame)
            self.assertEqual(back.schema, df.schema, "decimal precision and scale are kept")
            self.assertEqual(back.count(), df.count())
            self.assertEqual(df.exceptAll(back).count(), 0)
            self.assertEqual(back.exceptAll(df).count(), 0)
            summary = {c["label"]: c for c in ec.summary(frame)}
            from pyspark.sql import functions as F

            described = df.agg(F.avg(F.col("`prix à l'unité`")).alias("mean"), F.max(F.col("`half price`")).alias("max")).first()
            # Spark rounds the average of decimal(10,2) to 6 digits.
            self.assertAlmostEqual(summary["prix à l'unité"]["mean"], float(described["mean"]), delta=1e-6)
            self.assertEqual(summary["half price"]["max"], float(described["max"]))
            self.assertEqual(summary["empty dec"]["missing"], df.count())
        finally:
            ec.stop()
            df.unpersist()

    def test_empty_dataframes_and_dataframes_without_columns_convert(self):
        base = self.spark.range(1000, numPartitions=3).selectExpr("id", "cast(id as decimal(12,3)) / 7 as q", "cast(id as string) as s")
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            for what, df in (("limit(0)", base.limit(0)), ('filter("false")', base.filter("false")), ("no rows", base.filter("id < 0"))):
                with self.subTest(what):
                    frame = ec.as_frame(df, categorical=["s"])
                    info = ec.frame_info(frame)
                    self.assertEqual(info["rows"], 0)
                    self.assertEqual([c["name"] for c in info["columns"]], base.columns)
                    back = ec.as_spark_frame(frame)
                    self.assertEqual(back.schema, base.schema)
                    self.assertEqual(back.count(), 0)
                    ec.delete(frame)
            no_columns = base.select()
            frame = ec.as_frame(no_columns)
            info = ec.frame_info(frame)
            self.assertEqual((info["rows"], info["columns"]), (1000, []))
            back = ec.as_spark_frame(frame)
            self.assertEqual((back.count(), back.columns), (1000, []))
            frame = ec.as_frame(no_columns.limit(0))
            self.assertEqual((ec.frame_info(frame)["rows"], ec.frame_info(frame)["columns"]), (0, []))
        finally:
            ec.stop()

    def test_types_a_frame_cannot_hold_are_refused_on_the_driver_before_any_job(self):
        df = self.spark.range(10).selectExpr("id", "encode(cast(id as string), 'utf-8') as `raw.bytes`", "array(id) as xs", "id as id")
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        sc = self.spark.sparkContext
        try:
            sc.setJobGroup("eddy-refusal", "as_frame of unconvertible columns")
            with self.assertRaises(EddyError) as raised:
                ec.as_frame(df, categorical=["nope"])
            sc.setLocalProperty("spark.jobGroup.id", None)
            message = str(raised.exception)
            for part in ('column "raw.bytes" is binary', 'column "xs" is array<bigint>', 'columns are named "id"', '"nope"', "cast"):
                self.assertIn(part, message)
            self.assertEqual(list(sc.statusTracker().getJobIdsForGroup("eddy-refusal")), [], "no Spark job ran")
        finally:
            ec.stop()

    def test_a_killed_worker_is_removed_named_by_its_executor_and_the_cloud_carries_on(self):
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            victim = ec.workers[1]
            os.kill(victim["pid"], signal.SIGKILL)
            wait_until("the cloud to remove it", 30, lambda: ec.status()["lost"])
            st = ec.check()
            self.assertEqual([(l["node"], l["executor"]) for l in st["lost"]], [(victim["node"], victim["executor"])])
            self.assertIn("nothing has listened at its address", st["lost"][0]["reason"])
            self.assertEqual(st["size"], len(ec.workers) - 1)
        finally:
            pids = [w["pid"] for w in ec.workers]
            ec.stop()
        wait_until("workers gone", 30, lambda: not any(alive(p) for p in pids))

    def test_a_closed_pipe_stops_the_cloud_as_a_crashed_notebook_would(self):
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        pids = [w["pid"] for w in ec.workers]
        # What the operating system does when the Python process dies: our end of the pipe closes.
        ec._driver.stdin.close()
        wait_until("workers and observer gone", 30, lambda: not any(alive(p) for p in pids + [ec._driver.pid]))
        ec.stop()

    def test_a_million_rows_of_every_type_go_to_a_frame_and_back_unchanged(self):
        from pyspark.sql import functions as F

        rows = 1_000_000
        i = F.col("id")
        df = self.spark.range(rows, numPartitions=4).select(
            i,
            ((i * 7919) % 100_003 - 50_000).cast("int").alias("i32"),
            F.when(i % 13 == 0, None).otherwise((i % 300).cast("short")).alias("i16"),
            F.when(i % 7 == 0, None).when(i % 1001 == 0, F.lit(float("nan"))).otherwise(F.sqrt(i) * 1.5 - 100).alias("d"),
            (i / 3).cast("float").alias("f"),
            F.when(i % 5 == 0, None).otherwise(i % 3 == 0).alias("b"),
            F.when(i % 9 == 0, None).otherwise(F.concat(F.lit("s-é"), (i % 5003).cast("string"))).alias("s"),
            F.when(i % 17 == 0, None).otherwise(F.concat(F.lit("level"), ((i * 31) % 12).cast("string"))).alias("cat"),
            F.when(i % 11 == 0, None).otherwise(F.timestamp_micros(F.lit(1_700_000_000_000_000) + i * 1_234_567 - 10**15)).alias("ts"),
            F.date_add(F.lit("1960-01-01").cast("date"), (i % 40_000).cast("int")).alias("dt"),
        ).cache()
        self.assertEqual(df.count(), rows)
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            frame = ec.as_frame(df, categorical=["cat"])
            conversion = ec.last_conversion
            self.assertEqual(ec.data_path, EXPECTED_PATH)
            self.assertEqual(conversion["rows"], rows)
            self.assertEqual(conversion["local_chunks"], conversion["chunks"], f"every partition went to its executor's worker: {conversion} {ec.workers}")
            types = {c["name"]: c["type"] for c in ec.frame_info(frame)["columns"]}
            self.assertEqual(types["cat"], "enum")
            self.assertEqual(types["ts"], "time")

            back = ec.as_spark_frame(frame)
            self.assertTrue(ec.last_read_locality, "read tasks prefer the host of their chunk")
            self.assertEqual(back.schema, df.schema)
            self.assertEqual(back.count(), rows)
            self.assertEqual(df.exceptAll(back).count(), 0)
            self.assertEqual(back.exceptAll(df).count(), 0)
            # Row order is the frame's: partition by partition, as Spark had them.
            self.assertEqual([r.id for r in back.limit(5).collect()], [0, 1, 2, 3, 4])

            # The summary against Spark's own describe() and aggregates on the same data.
            summary = {c["label"]: c for c in ec.summary(frame)}
            numeric = ["id", "i32", "i16", "f"]
            described = {r["summary"]: r for r in df.describe(*numeric).collect()}
            for name in numeric:
                s = summary[name]
                self.assertEqual(s["count"], int(described["count"][name]), name)
                self.assertEqual(s["missing"], rows - s["count"], name)
                for ours, theirs in (("mean", "mean"), ("sd", "stddev"), ("min", "min"), ("max", "max")):
                    self.assertAlmostEqual(s[ours], float(described[theirs][name]), delta=1e-9 * max(1.0, abs(s[ours])), msg=f"{name} {ours}")
            agg = df.agg(
                F.count("d").alias("n"), F.unix_micros(F.min("ts")).alias("t0"), F.unix_micros(F.max("ts")).alias("t1"),
                F.sum(F.col("b").cast("int")).alias("trues"), F.count("b").alias("nb"),
                F.countDistinct("cat").alias("levels"), F.sum(F.when(F.col("i32") == 0, 1).otherwise(0)).alias("zeros"),
            ).first()
            self.assertEqual(summary["d"]["count"] + summary["d"]["missing"], rows)
            self.assertEqual(summary["d"]["count"], agg["n"])
            self.assertEqual(summary["i32"]["zeros"], agg["zeros"])
            self.assertEqual(summary["b"]["count"], agg["nb"])
            self.assertAlmostEqual(summary["b"]["mean"] * summary["b"]["count"], agg["trues"], delta=1e-6)
            self.assertEqual(summary["cat"]["cardinality"], agg["levels"])
            levels = {r["cat"]: r["count"] for r in df.groupBy("cat").count().collect() if r["cat"] is not None}
            self.assertEqual(len(summary["cat"]["top_levels"]), 10)
            for level, count in summary["cat"]["top_levels"]:
                self.assertEqual(count, levels[level], level)
            # Times summarise in epoch milliseconds.
            self.assertAlmostEqual(summary["ts"]["min"], agg["t0"] / 1000, delta=1e-3)
            self.assertAlmostEqual(summary["ts"]["max"], agg["t1"] / 1000, delta=1e-3)
            ec.delete(frame)
            self.assertEqual(ec.frames(), [])
        finally:
            ec.stop()
            df.unpersist()

    def test_dynamic_allocation_is_refused_with_the_reason(self):
        from eddy import spark as eddy_spark

        conf = self.spark.sparkContext.getConf()
        conf.set("spark.dynamicAllocation.enabled", "true")
        ctx = eddy_spark.EddyContext(self.spark, None, "256m", 0, 30, "1s", "3s", None, None)
        ctx._sc = type("Sc", (), {"getConf": lambda self: conf})()
        with self.assertRaises(EddyError) as raised:
            ctx._check_conf()
        self.assertIn("eddy.spark.allowDynamicAllocation", str(raised.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)


class LostExecutor(unittest.TestCase):
    """A lost executor takes its worker along; Spark starts another executor, and Eddy a worker
    on it that joins the cloud in the lost one's place."""

    @classmethod
    def setUpClass(cls):
        cls.spark = session("local-cluster[2,1,1024]", "eddy-lost-executor-test")

    @classmethod
    def tearDownClass(cls):
        cls.spark.stop()

    def test_a_killed_executor_gets_a_new_worker_and_the_frames_are_kept(self):
        import tempfile

        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        pids = [w["pid"] for w in ec.workers]
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "kept.csv")
                with open(path, "w") as f:
                    f.write("a,b,c\n")
                    f.writelines(f"{i},{i * 0.5},{'xyz'[i % 3]}\n" for i in range(200_000))
                # Small splits: chunks on both workers.
                ec.import_file(path, name="kept.hex", split_bytes=256 * 1024)
                before = ec.summary("kept.hex")
                victim = ec.workers[1]
                held = [c for c in ec.frame_info("kept.hex")["chunks"] if f"{c['node']['ip']}:{c['node']['rest_port']}" == victim["node"]]
                self.assertTrue(held, "the victim holds chunks of the frame")
                self.assertIsNotNone(victim["executor_pid"], "the worker knows its executor's JVM")

                # What a lost executor looks like: its JVM killed, not the worker.
                os.kill(victim["executor_pid"], signal.SIGKILL)
                wait_until("a new worker in the lost one's place", 120, lambda: ec.replacements)
                self.assertIsNone(ec.replacement_error)
                wait_until("the lost executor's worker to end with it", 30, lambda: not alive(victim["pid"]))
                new = next(w for w in ec.workers if w["worker"] == victim["worker"])
                pids.append(new["pid"])
                self.assertNotEqual(new["executor"], victim["executor"])
                self.assertNotEqual(new["node"], victim["node"])
                self.assertEqual(ec.replacements[0]["node"], new["node"])

                st = ec.check()
                self.assertEqual(st["size"], 2, st)
                self.assertEqual([(l["node"], l["executor"]) for l in st["lost"]], [(victim["node"], victim["executor"])])
                wait_until("the frame to answer", 30, lambda: not _raises(lambda: ec.summary("kept.hex")))

                self.assertEqual(ec.summary("kept.hex"), before)

            # The new worker takes part: each partition goes to the worker of its own executor.
            ec.as_frame(self.spark.range(100_000, numPartitions=4), name="after.hex")
            self.assertEqual(ec.last_conversion["local_chunks"], 4, ec.last_conversion)
            nodes = {f"{c['node']['ip']}:{c['node']['rest_port']}" for c in ec.frame_info("after.hex")["chunks"]}
            self.assertIn(new["node"], nodes)
        finally:
            ec.stop()
        wait_until("every worker gone", 30, lambda: not any(alive(p) for p in pids))


def _raises(call):
    try:
        call()
    except EddyError as e:
        print("not yet:", e, file=sys.stderr)
        return True
    return False
