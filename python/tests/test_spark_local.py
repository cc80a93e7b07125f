"""EddyContext where most PySpark users start: Spark's local mode (`local[*]`, `local[2]`),
where the workers run next to the driver, and `spark.driver.host` given as a host name
(`localhost`, as YARN and notebooks give it) with local mode and with a local-cluster master."""

import os
import signal
import unittest
import urllib.error
import urllib.request

from eddy.spark import EddyContext
from test_spark import SETTINGS, decimals_and_odd_names, gone, session, wait_until


def convert_both_ways(test, ec, df):
    """`df` to a frame and back, unchanged; returns the frame's metadata."""
    frame = ec.as_frame(df)
    test.assertEqual(ec.last_conversion["rows"], df.count())
    test.assertEqual(ec.last_conversion["local_chunks"], ec.last_conversion["chunks"], "every put went to a worker on its host")
    back = ec.as_spark_frame(frame)
    test.assertEqual(back.schema, df.schema)
    test.assertEqual(df.exceptAll(back).count(), 0)
    test.assertEqual(back.exceptAll(df).count(), 0)
    return ec.frame_info(frame)


def stop_and_check_leftovers(test, ec):
    pids = [w["pid"] for w in ec.workers]
    ec.stop()
    wait_until("the workers reaped", 30, lambda: all(gone(p) for p in pids))
    test.assertFalse(os.path.exists(ec.log_dir), "the working directory and its secret are removed")


class LocalMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spark = session("local[*]", "eddy-local-mode-test", driver_host="localhost")

    @classmethod
    def tearDownClass(cls):
        cls.spark.stop()

    def test_local_mode_runs_one_worker_next_to_the_driver_and_converts_both_ways(self):
        df = decimals_and_odd_names(self.spark, partitions=4).cache()
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            self.assertEqual(ec.cloud()["cloud_size"], 1)
            self.assertTrue(ec.status()["healthy"])
            self.assertEqual([w["executor"] for w in ec.workers], ["driver"])
            info = convert_both_ways(self, ec, df)
            self.assertEqual(len(info["chunks"]), 4, "one chunk per partition")
        finally:
            stop_and_check_leftovers(self, ec)
            df.unpersist()

    def test_local_mode_runs_as_many_workers_as_asked(self):
        df = self.spark.range(50_000, numPartitions=4).selectExpr("id", "id * 0.5 as half", "cast(id % 7 as string) as s")
        ec = EddyContext.get_or_create(self.spark, nodes=2, **SETTINGS)
        try:
            self.assertEqual(ec.cloud()["cloud_size"], 2)
            info = convert_both_ways(self, ec, df)
            self.assertEqual(len({c["node"]["rest_port"] for c in info["chunks"]}), 2, "chunks spread over both workers")
            # The REST API of every node wants the cloud's token, which the context carries.
            for node in ec.cloud()["nodes"]:
                url = f"http://{node['ip_port']}/3/Frames"
                with self.assertRaises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(url, timeout=10)
                self.assertEqual(refused.exception.code, 401)
                request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ec.rest_token}"})
                with urllib.request.urlopen(request, timeout=10) as reply:
                    self.assertEqual(reply.status, 200)
            # The workers read the secret from a file, not from their environment.
            for w in ec.workers:
                with open(f"/proc/{w['pid']}/environ", "rb") as f:
                    environ = f.read()
                self.assertNotIn(b"EDDY_CLUSTER_SECRET", environ)
                self.assertIn(b"EDDY_SECRET_FILE=", environ)
        finally:
            stop_and_check_leftovers(self, ec)

    def test_a_killed_local_worker_is_started_again_and_joins_the_cloud(self):
        ec = EddyContext.get_or_create(self.spark, nodes=2, **SETTINGS)
        try:
            victim = ec.workers[1]
            os.kill(victim["pid"], signal.SIGKILL)
            wait_until("a new worker in its place", 60, lambda: ec.replacements)
            self.assertIsNone(ec.replacement_error)
            new = ec.workers[1]
            self.assertNotEqual(new["pid"], victim["pid"])
            self.assertEqual(ec.replacements[0]["node"], new["node"])
            st = ec.check()
            self.assertEqual(st["size"], 2, st)
            self.assertEqual([l["node"] for l in st["lost"]], [victim["node"]])
            df = self.spark.range(20_000, numPartitions=4).selectExpr("id", "id * 0.5 as half")
            info = convert_both_ways(self, ec, df)
            self.assertIn(new["node"], {f"{c['node']['ip']}:{c['node']['rest_port']}" for c in info["chunks"]})
        finally:
            stop_and_check_leftovers(self, ec)


class LocalClusterWithDriverHostName(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spark = session("local-cluster[2,1,1024]", "eddy-driver-host-name-test", driver_host="localhost")

    @classmethod
    def tearDownClass(cls):
        cls.spark.stop()

    def test_a_driver_host_name_is_resolved_and_the_cloud_converts_both_ways(self):
        self.assertEqual(self.spark.sparkContext.getConf().get("spark.driver.host"), "localhost")
        df = decimals_and_odd_names(self.spark, rows=20_000, partitions=2)
        ec = EddyContext.get_or_create(self.spark, **SETTINGS)
        try:
            self.assertEqual(ec.cloud()["cloud_size"], 2)
            self.assertEqual(len({w["executor"] for w in ec.workers}), 2)
            convert_both_ways(self, ec, df)
        finally:
            stop_and_check_leftovers(self, ec)


if __name__ == "__main__":
    unittest.main(verbosity=2)
