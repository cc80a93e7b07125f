"""`spark-submit` of an application that attaches Eddy (jobs/attach_job.py: a DataFrame to a
frame and back, a summary, stop; it prints what it saw), with two cluster managers on
127.0.0.1, started and stopped here:

- `--master spark://...`: a real Spark standalone master and two workers of one core each
  (the classes PyPI pyspark ships);
- `--master yarn`: Spark's own YARN client, ApplicationMaster and executors against the
  protocol-level test YARN and HDFS (`eddy-test-hadoop`), whose NodeManagers run the
  containers as local processes.

The executors have no `eddy` package, only what the job ships them."""

import json
import os
import shutil
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
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_spark_submit_to_a_standalone_master_attaches_converts_and_stops(self):
        r = submit(self, ["--master", self.master_url, "--total-executor-cores", "2", "--executor-cores", "1"], self.env)
        self.assertEqual(r["master"], self.master_url)
        check_result(self, r)


def submit(test, master_args, env, extra_conf=()):
    """Runs jobs/attach_job.py with spark-submit; returns what it printed."""
    env = dict(env)
    # The driver imports eddy from this repository; executors get the task code by value.
    env["PYTHONPATH"] = os.path.dirname(HERE)
    env["PYSPARK_PYTHON"] = sys.executable
    command = [
        os.path.join(SPARK_HOME, "bin", "spark-submit"),
        *master_args,
        "--executor-memory", "1g",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.pyspark.python={sys.executable}",
    ]
    for c in extra_conf:
        command += ["--conf", c]
    command.append(os.path.join(HERE, "jobs", "attach_job.py"))
    t0 = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("EDDY-RESULT ")]
    test.assertEqual(done.returncode, 0, done.stderr[-4000:])
    test.assertEqual(len(lines), 1, done.stdout[-2000:])
    r = json.loads(lines[0][len("EDDY-RESULT "):])
    print(f"\nspark-submit {' '.join(master_args)}: {time.time() - t0:.1f} s; {r}", file=sys.stderr)
    return r


def check_result(test, r):
    test.assertEqual(r["cloud_size"], 2, r)
    test.assertEqual(len(r["executors"]), 2, "one worker on each executor")
    test.assertEqual(r["rows"], 200_000)
    test.assertEqual((r["missing_from_back"], r["extra_in_back"]), (0, 0))
    test.assertEqual(r["local_puts"], r["chunks"], "every partition went to the worker of its executor")
    test.assertTrue(r["read_locality"])
    test.assertAlmostEqual(r["x_mean"], r["spark_mean"], delta=1e-9 * abs(r["spark_mean"]))
    test.assertAlmostEqual(r["x_sd"], r["spark_sd"], delta=1e-9 * abs(r["spark_sd"]))
    test.assertEqual(r["c_cardinality"], 5)
    wait_until("the workers to exit after ec.stop()", 30, lambda: not any(alive(p) for p in r["worker_pids"]))


class SparkSubmitToYarn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="eddy-yarn-")
        binary = os.path.join(os.environ["EDDY_BIN_DIR"], "eddy-test-hadoop")
        cls.hadoop = subprocess.Popen(
            [binary, cls.dir, "2", "900"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        line = cls.hadoop.stdout.readline().strip()
        if not line.startswith("HADOOP_CONF_DIR="):
            cls.tearDownClass()
            raise AssertionError(f"eddy-test-hadoop did not start: {line!r}")
        cls.conf = line.split("=", 1)[1]
        cls.staging = os.path.join(cls.dir, "staging")
        os.makedirs(cls.staging)

    @classmethod
    def tearDownClass(cls):
        cls.hadoop.stdin.close()
        try:
            cls.hadoop.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cls.hadoop.pid, 9)
            cls.hadoop.wait(timeout=10)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_spark_submit_to_yarn_attaches_converts_and_stops(self):
        env = dict(os.environ, SPARK_HOME=SPARK_HOME, SPARK_LOCAL_IP="127.0.0.1", HADOOP_CONF_DIR=self.conf, HADOOP_USER_NAME="eddy")
        env.pop("PYTHONPATH", None)
        jars = os.path.join(SPARK_HOME, "jars", "*")
        r = submit(
            self,
            ["--master", "yarn", "--deploy-mode", "client", "--num-executors", "2", "--executor-cores", "1"],
            env,
            extra_conf=[
                # The jars are on this machine already: no 300 MB upload to the test HDFS.
                f"spark.yarn.jars=local:{jars}",
                # The test NameNode does not serve setPermission, which staging on HDFS needs.
                f"spark.yarn.stagingDir=file://{self.staging}",
                # Containers bind to loopback, as every test here does.
                "spark.yarn.appMasterEnv.SPARK_LOCAL_IP=127.0.0.1",
                "spark.executorEnv.SPARK_LOCAL_IP=127.0.0.1",
            ],
        )
        self.assertEqual(r["master"], "yarn")
        check_result(self, r)


if __name__ == "__main__":
    unittest.main()
