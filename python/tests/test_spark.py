"""EddyContext against real Apache Spark (PyPI pyspark) on 127.0.0.1: a local-cluster master
with two executors of one core each, started and stopped here. Needs EDDY_BIN_DIR pointing at
the built binaries and Java 17; scripts/spark-test.sh sets both up."""

import os
import signal
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
        cls.spark = (
            SparkSession.builder.master("local-cluster[2,1,1024]")
            .appName("eddy-attach-test")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )

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
        finally:
            pids = [w["pid"] for w in ec.workers]
            driver = ec._driver.pid
            ec.stop()
        wait_until("workers and observer gone", 30, lambda: not any(alive(p) for p in pids + [driver]))
        self.assertFalse(ec.is_running())

    def test_a_killed_worker_makes_the_cloud_unhealthy_and_names_its_executor(self):
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            victim = ec.workers[1]
            os.kill(victim["pid"], signal.SIGKILL)
            wait_until("the cloud to notice", 30, lambda: not ec.status()["healthy"])
            with self.assertRaises(EddyError) as raised:
                ec.check()
            self.assertIn(victim["executor"], str(raised.exception))
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
