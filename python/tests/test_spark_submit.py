"""`spark-submit --master spark://...` against a real Spark standalone cluster on 127.0.0.1: a
master and two workers of one core each (the classes PyPI pyspark ships), started and stopped
here. The submitted application (jobs/attach_job.py) attaches Eddy, sends a DataFrame to a
frame and back, and prints what it saw; the executors have no `eddy` package, only what the
job ships them."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import pyspark

from tests.test_spark import alive, wait_until

SPARK_HOME = os.path.dirname(pyspark.__file__)
HERE = os.path.dirname(os.path.abspath(__file__))


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def log_has(path, text):
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except OSError:
        return False


class SparkSubmitToStandalone(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="eddy-standalone-")
        master_port, master_ui, *worker_ports = free_ports(6)
        cls.master_url = f"spark://127.0.0.1:{master_port}"
        env = dict(os.environ, SPARK_HOME=SPARK_HOME, SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=cls.dir)
        env.pop("PYTHONPATH", None)  # the cluster's processes know nothing of this repository
        cls.env = env
        cls.daemons = []
        spark_class = os.path.join(SPARK_HOME, "bin", "spark-class")

        def daemon(name, args):
            log = os.path.join(cls.dir, f"{name}.log")
            with open(log, "wb") as out:
                p = subprocess.Popen([spark_class, *args], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            cls.daemons.append(p)
            return log

        try:
            master_log = daemon(
                "master",
                ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(master_ui)],
            )
            wait_until("the standalone master to lead", 90, lambda: log_has(master_log, "I have been elected leader"))
            logs = []
            for k in range(2):
                work = os.path.join(cls.dir, f"work-{k}")
                logs.append(
                    daemon(
                        f"worker-{k}",
                        [
                            "org.apache.spark.deploy.worker.Worker", cls.master_url,
                            "--host", "127.0.0.1", "--port", str(worker_ports[2 * k]), "--webui-port", str(worker_ports[2 * k + 1]),
                            "--cores", "1", "--memory", "1g", "--work-dir", work,
                        ],
                    )
                )
            for log in logs:
                wait_until("a worker to register with the master", 90, lambda log=log: log_has(log, "Successfully registered with master"))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.daemons:
            try:
                os.killpg(p.pid, 15)
            except ProcessLookupError:
                pass
        for p in cls.daemons:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait(timeout=10)

    def test_spark_submit_to_a_standalone_master_attaches_converts_and_stops(self):
        env = dict(self.env)
        # The driver imports eddy from this repository; executors get the task code by value.
        env["PYTHONPATH"] = os.path.dirname(HERE)
        env["PYSPARK_PYTHON"] = sys.executable
        command = [
            os.path.join(SPARK_HOME, "bin", "spark-submit"),
            "--master", self.master_url,
            "--total-executor-cores", "2",
            "--executor-cores", "1",
            "--executor-memory", "1g",
            "--conf", "spark.driver.host=127.0.0.1",
            "--conf", "spark.driver.bindAddress=127.0.0.1",
            "--conf", "spark.ui.enabled=false",
            "--conf", f"spark.pyspark.python={sys.executable}",
            os.path.join(HERE, "jobs", "attach_job.py"),
        ]
        t0 = time.time()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("EDDY-RESULT ")]
        self.assertEqual(done.returncode, 0, done.stderr[-4000:])
        self.assertEqual(len(lines), 1, done.stdout[-2000:])
        r = json.loads(lines[0][len("EDDY-RESULT "):])
        print(f"\nspark-submit to {self.master_url}: {time.time() - t0:.1f} s; {r}", file=sys.stderr)

        self.assertEqual(r["master"], self.master_url)
        self.assertEqual(r["cloud_size"], 2, r)
        self.assertEqual(len(r["executors"]), 2, "one worker on each executor")
        self.assertEqual(r["rows"], 200_000)
        self.assertEqual((r["missing_from_back"], r["extra_in_back"]), (0, 0))
        self.assertEqual(r["local_puts"], r["chunks"], "every partition went to the worker of its executor")
        self.assertTrue(r["read_locality"])
        self.assertAlmostEqual(r["x_mean"], r["spark_mean"], delta=1e-9 * abs(r["spark_mean"]))
        self.assertAlmostEqual(r["x_sd"], r["spark_sd"], delta=1e-9 * abs(r["spark_sd"]))
        self.assertEqual(r["c_cardinality"], 5)
        wait_until("the workers to exit after ec.stop()", 30, lambda: not any(alive(p) for p in r["worker_pids"]))


if __name__ == "__main__":
    unittest.main()
