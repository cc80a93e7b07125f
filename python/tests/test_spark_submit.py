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

import eddy
from test_spark import EXECUTOR_PYTHON, alive, wait_until

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
        r = submit(
            self, ["--master", self.master_url, "--total-executor-cores", "2", "--executor-cores", "1"], self.env, extra_conf=LOCAL_DRIVER
        )
        self.assertEqual(r["master"], self.master_url)
        check_result(self, r)


def submit(test, master_args, env, extra_conf=(), options=(), job_args=(), read_result=None, driver_here=True):
    """Runs jobs/attach_job.py with spark-submit; returns what it printed (or, with
    `read_result`, what that function reads back after the submission ended)."""
    env = dict(env)
    env["PYSPARK_PYTHON"] = EXECUTOR_PYTHON
    # A driver here runs this interpreter, which has the eddy wheel; one in a YARN container
    # runs the executors' Python, which has no eddy: it gets the package from the submission.
    # Executors get the task code by value.
    driver_python = sys.executable if driver_here else EXECUTOR_PYTHON
    command = [
        os.path.join(SPARK_HOME, "bin", "spark-submit"),
        *master_args,
        "--executor-memory", "1g",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.pyspark.python={EXECUTOR_PYTHON}",
        "--conf", f"spark.pyspark.driver.python={driver_python}",
        *options,
    ]
    for c in extra_conf:
        command += ["--conf", c]
    command.append(os.path.join(HERE, "jobs", "attach_job.py"))
    command.extend(job_args)
    t0 = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    test.assertEqual(done.returncode, 0, done.stderr[-4000:])
    output = read_result() if read_result else done.stdout
    lines = [line for line in output.splitlines() if line.startswith("EDDY-RESULT ")]
    test.assertEqual(len(lines), 1, output[-2000:])
    r = json.loads(lines[0][len("EDDY-RESULT "):])
    print(f"\nspark-submit {' '.join(master_args)}: {time.time() - t0:.1f} s; {r}", file=sys.stderr)
    return r


# Where the driver runs on this machine (the standalone master, YARN's client mode), it
# binds to and advertises loopback, as every test here does.
LOCAL_DRIVER = ("spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1")


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
        binary = os.path.join(os.environ["EDDY_TEST_BIN_DIR"], "eddy-test-hadoop")
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
                *LOCAL_DRIVER,
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




REAL_HADOOP_CONF = os.environ.get("EDDY_REAL_HADOOP_CONF")
HADOOP_CLUSTER = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "hadoop-cluster.sh")


@unittest.skipUnless(REAL_HADOOP_CONF, "needs a real Hadoop cluster: scripts/real-hadoop-test.sh starts one and sets EDDY_REAL_HADOOP_CONF")
class SparkSubmitToRealYarn(unittest.TestCase):
    """`spark-submit --master yarn` in both deploy modes against Apache Hadoop's own
    ResourceManager, NodeManagers (127.0.0.2, 127.0.0.3) and HDFS, as scripts/hadoop-cluster.sh
    runs them. Spark stages the application on that HDFS, in the user's home directory."""

    USER = "sparkuser"

    @classmethod
    def hadoop(cls, *args, user=None):
        """scripts/hadoop-cluster.sh ARGS as `user` (the superuser, root, when None)."""
        env = dict(os.environ)
        env.pop("HADOOP_USER_NAME", None)
        if user:
            env["HADOOP_USER_NAME"] = user
        return subprocess.run([HADOOP_CLUSTER, *args], env=env, capture_output=True, text=True, timeout=120)

    @classmethod
    def setUpClass(cls):
        home = f"/user/{cls.USER}"
        for args in (["hdfs", "-mkdir", "-p", home], ["hdfs", "-chown", cls.USER, home]):
            done = cls.hadoop(*args)
            if done.returncode != 0:
                raise AssertionError(f"hdfs dfs {' '.join(args[1:])}: {done.stderr[-2000:]}")
        cls.dir = tempfile.mkdtemp(prefix="eddy-real-yarn-")
        # SPARK_LOCAL_IP is for the processes on this side (spark-submit, the client-mode
        # driver); containers get their NodeManager's address (scripts/hadoop-cluster.sh).
        cls.env = dict(
            os.environ, SPARK_HOME=SPARK_HOME, SPARK_LOCAL_IP="127.0.0.1", HADOOP_CONF_DIR=REAL_HADOOP_CONF, HADOOP_USER_NAME=cls.USER
        )
        cls.env.pop("PYTHONPATH", None)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def conf(self):
        return [
            # Spark's 440 MB of jars are on every NodeManager's machine here (it is this one),
            # as an installed Spark is on many clusters; the application itself, pyspark.zip,
            # py4j and Spark's configuration are staged on HDFS.
            f"spark.yarn.jars=local:{os.path.join(SPARK_HOME, 'jars', '*')}",
        ]

    def application(self, app_id):
        done = self.hadoop("yarn", "application", "-status", app_id, user=self.USER)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        return dict(
            (k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
        )

    def check_yarn(self, r):
        report = self.application(r["app_id"])
        self.assertEqual(report.get("Final-State"), "SUCCEEDED", report)
        self.assertEqual(report.get("User"), self.USER, report)
        # Spark removes its staging directory when the application ends.
        staging = f"/user/{self.USER}/.sparkStaging/{r['app_id']}"
        self.assertNotEqual(self.hadoop("hdfs", "-test", "-e", staging, user=self.USER).returncode, 0, f"{staging} is left")

    def test_client_deploy_mode(self):
        r = submit(
            self,
            ["--master", "yarn", "--deploy-mode", "client", "--num-executors", "2", "--executor-cores", "1"],
            self.env,
            extra_conf=[*LOCAL_DRIVER, *self.conf()],
        )
        self.assertEqual((r["master"], r["deploy_mode"]), ("yarn", "client"))
        check_result(self, r)
        self.check_yarn(r)

    def test_cluster_deploy_mode(self):
        # The driver runs in YARN's ApplicationMaster container: it gets the eddy package and
        # both binaries from the submission (localized into its working directory), as a
        # cluster where nothing of Eddy is installed would.
        package = shutil.make_archive(os.path.join(self.dir, "eddy"), "zip", os.path.dirname(HERE), "eddy")
        binaries = ",".join(eddy.find_binary(b) for b in ("eddy-driver", "eddy-mapper"))
        result_dir = f"/user/{self.USER}/eddy-result-{os.getpid()}"

        def read_result():
            done = self.hadoop("hdfs", "-cat", f"{result_dir}/part-*", user=self.USER)
            self.assertEqual(done.returncode, 0, done.stderr[-2000:])
            return done.stdout

        env = dict(self.env)
        env.pop("EDDY_BIN_DIR", None)
        r = submit(
            self,
            ["--master", "yarn", "--deploy-mode", "cluster", "--num-executors", "2", "--executor-cores", "1"],
            env,
            options=["--py-files", package, "--files", binaries, "--driver-memory", "1g"],
            extra_conf=[
                *self.conf(),
                "spark.yarn.appMasterEnv.EDDY_BIN_DIR=.",
                f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={EXECUTOR_PYTHON}",
                "spark.yarn.submit.waitAppCompletion=true",
            ],
            job_args=[result_dir],
            read_result=read_result,
            driver_here=False,
        )
        self.assertEqual((r["master"], r["deploy_mode"]), ("yarn", "cluster"))
        check_result(self, r)
        self.check_yarn(r)
        self.hadoop("hdfs", "-rm", "-r", "-f", result_dir, user=self.USER)


if __name__ == "__main__":
    unittest.main()
