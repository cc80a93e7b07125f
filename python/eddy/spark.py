"""Attach an Eddy cloud to a Spark application, as Sparkling Water's internal backend does
for H2O: every executor runs one ``eddy-mapper`` worker, and the Spark driver's machine
runs the gather service and the observer client (``eddy-driver attach``). In Spark's local
mode (``local``, ``local[*]``, ``local[N]``), where the driver is the only executor, the
workers run next to the driver instead (one, or ``nodes=``).

    from eddy.spark import EddyContext
    ec = EddyContext.get_or_create(spark)     # one worker per executor, cloud formed
    ec.cloud()                                # GET /3/Cloud
    ec.stop()

How it starts:

1. ``eddy-driver attach`` starts next to this Python process, with a fresh cluster secret
   (a 0600 file) and standard input on a pipe from us: when this process goes (a crashed
   notebook), the pipe closes and the cloud stops; workers whose driver vanished exit too.
2. The mapper binary travels with the job (``SparkContext.addFile``); a barrier stage with
   one task per executor starts it detached on each executor with the gather address and the
   secret. Barrier mode runs all tasks at once, one per free task slot: with one core per
   executor that is one worker per executor; the executors are checked to be distinct
   anyway, and two workers on one executor is an error that names it.
3. The workers register, get the peer list and form the cloud; ``get_or_create`` returns
   once ``eddy-driver attach`` reports the formed cloud.

The working directory (secret, driver log, local workers' logs) is removed by ``stop()``; with
``keep_logs=True`` only the secret is, and the logs stay for reading.

The secret reaches executors inside the task closure, over Spark's own RPC (as Sparkling
Water's settings do); turn on ``spark.authenticate`` and ``spark.io.encryption.enabled`` where
that matters.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import hashlib
import hmac
import sys
import tempfile
import threading
import time
import urllib.request

from eddy import _keys as keys
from eddy import frames as _frames
from eddy import transfer as _transfer
from eddy.binaries import find_binary
from eddy.client import Client, EddyError, frame_path


def _ship_code_with_tasks():
    """Executors need nothing installed: the task functions of this package travel inside the
    tasks (by value) instead of being imported there by name."""
    try:
        from pyspark import cloudpickle
    except ImportError:  # not running under Spark: nothing to ship
        return
    for module in (keys, _frames, _transfer, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(module)


_ship_code_with_tasks()

_LOCK = threading.Lock()
_ACTIVE = None
_ADDED_MAPPERS = set()


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _expected_executors(sc):
    """How many executors the application asked for, where the settings say it: the executor
    instances (YARN, Kubernetes), ``local-cluster[N,...]``, or on a standalone master the
    total cores over the cores per executor. ``None`` if they do not say."""
    conf = sc.getConf()
    instances = conf.get("spark.executor.instances", None)
    if instances:
        return int(instances)
    master = sc.master or ""
    match = re.match(r"local-cluster\[(\d+)", master)
    if match:
        return int(match.group(1))
    cores_max, executor_cores = conf.get("spark.cores.max", None), conf.get("spark.executor.cores", None)
    if master.startswith("spark://") and cores_max and executor_cores and int(executor_cores) > 0:
        return int(cores_max) // int(executor_cores)
    return None


def _is_local_mode(master):
    """Spark's local mode (``local``, ``local[4]``, ``local[*]``, ``local[2,3]``): the driver
    runs the tasks itself, there are no executors to start workers in. ``local-cluster`` has
    executor processes and is not local mode."""
    return bool(re.fullmatch(r"local(\[[^\]]*\])?", (master or "").strip()))


def _secret_file(secret, directory, name):
    """Writes the secret to a file only this user can read; workers read it there, not from
    their environment (which /proc/PID/environ shows)."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return path


def _worker_env(gather, secret_file, settings, worker_id, host):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        keys.DRIVER: gather,
        keys.SECRET_FILE: secret_file,
        keys.CLOUD_NAME: settings["name"],
        keys.WORKER_ID: str(worker_id),
        keys.PORT: str(settings["port"]),
        keys.MEMORY: settings["memory"],
        keys.TIMEOUT: settings["timeout"],
        keys.HEARTBEAT_INTERVAL: settings["heartbeat_interval"],
        keys.HEARTBEAT_TIMEOUT: settings["heartbeat_timeout"],
    }
    if settings.get("network"):
        env[keys.NETWORK] = settings["network"]
    else:
        env[keys.IP] = host
    return env


def rest_token(secret, cloud_name):
    """The REST access token of a cloud: what ``eddy-driver`` and every node derive from the
    cluster secret (an HMAC-SHA256 of the cloud's name, hex), so it never travels."""
    return hmac.new(secret.strip().encode(), f"eddy-rest-v1|{cloud_name}".encode(), hashlib.sha256).hexdigest()


def _live_executors(sc):
    # The status tracker lists the driver too.
    return max(0, len(sc._jsc.sc().statusTracker().getExecutorInfos()) - 1)


_MARKER = "eddy-mapper.pid"


def _proc_stat(pid):
    """(command name, state, parent pid) of a process from /proc, or ``None`` if it is gone.
    The name may hold spaces and parentheses: the fields follow the last ')'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return stat[stat.index("(") + 1 : stat.rindex(")")], state, int(ppid)


def _executor_pid():
    """The executor's JVM: the nearest ``java`` process above this Python worker (its parent
    is PySpark's daemon, whose parent is the JVM); ``None`` where /proc does not tell."""
    pid = os.getppid()
    for _ in range(4):
        stat = _proc_stat(pid)
        if stat is None:
            return None
        if stat[0] == "java":
            return pid
        pid = stat[2]
        if pid <= 1:
            return None
    return None


def _running_mapper(work_dir):
    """The pid of the worker already running for this executor (its marker in the executor's
    working directory), or ``None``."""
    try:
        with open(os.path.join(work_dir, _MARKER)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    stat = _proc_stat(pid)
    running = stat is not None and stat[1] != "Z" and "eddy-mapper" in stat[0]
    return pid if running else None


def _java_message(error):
    """The message of a Java exception's innermost EddyException (what to do), else its own."""
    found = None
    cause = error.java_exception
    for _ in range(16):
        if cause is None:
            break
        if cause.getClass().getName() == "ai.eddy.spark.EddyException":
            found = cause.getMessage()
        cause = cause.getCause()
    return found or str(error.java_exception.getMessage())


def _worker_starter(gather, secret, settings, worker_ids=None):
    """The task that starts one worker on the executor it runs on: worker ``worker_ids[p]``
    for partition ``p`` (default: the partition's number). A task on an executor that already
    has a worker starts none and says so (``busy``)."""

    def start(_rows):
        import socket
        import subprocess as sp

        from pyspark import SparkFiles, TaskContext

        try:
            from pyspark import BarrierTaskContext

            ctx = BarrierTaskContext.get()
            partition = ctx.partitionId()
            address = ctx.getTaskInfos()[partition].address
        except Exception:  # not a barrier stage (dynamic allocation allowed, a replacement)
            ctx = TaskContext.get()
            partition = ctx.partitionId()
            address = None
        worker = worker_ids[partition] if worker_ids else partition
        work_dir = os.getcwd()
        # Only a replacement looks: at the start, a stopped context's worker may still be exiting.
        running = _running_mapper(work_dir) if worker_ids else None
        if running is not None:
            yield json.dumps({"worker": worker, "busy": running})
            return
        host = address.rsplit(":", 1)[0] if address else socket.gethostbyname(socket.gethostname())
        # The Python worker's parent is the executor's PySpark daemon: (host, its pid) names
        # the executor even where Spark gives no address.
        executor = address or f"{host}/{os.getppid()}"
        path = SparkFiles.get("eddy-mapper")
        os.chmod(path, 0o755)
        # In the executor's working directory, which Spark or YARN removes with the application.
        secret_path = _secret_file(secret, work_dir, f"eddy-secret-{worker}")
        env = _worker_env(gather, secret_path, settings, worker, host)
        # The worker runs in a session of its own (below), so the executor's end does not reach
        # it: it watches the executor's JVM instead, and a lost executor takes its worker along.
        executor_pid = _executor_pid()
        if executor_pid is not None:
            env[keys.EXIT_WITH_PID] = str(executor_pid)
        log_path = os.path.join(work_dir, f"eddy-mapper-{worker}.log")
        with open(log_path, "ab") as log:
            proc = sp.Popen(
                [path],
                env=env,
                cwd=work_dir,
                stdin=sp.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives this task and the Python worker
                close_fds=True,
            )
        with open(os.path.join(work_dir, _MARKER), "w") as marker:
            marker.write(str(proc.pid))
        # The Python worker lives on after this task (Spark reuses it) and is the mapper's
        # parent: without a wait the stopped mapper stays a zombie until Spark stops. A
        # daemon thread waits for it, then removes the secret file, which in local mode sits
        # in the user's working directory; if the Python worker exits first, the mapper is
        # reparented to init, which reaps it, and Spark or YARN remove the executor's
        # directory with the application.
        import threading

        def reap():
            proc.wait()
            try:
                os.remove(secret_path)
            except OSError:
                pass

        threading.Thread(target=reap, name=f"eddy-mapper-{worker}-reaper", daemon=True).start()
        # No barrier() sync here: the stage already launched every task at once, and the
        # sync costs about a second (measured, bench/RESULTS.md).
        record = {"worker": worker, "executor": executor, "host": host, "pid": proc.pid, "log": log_path,
                  "executor_pid": executor_pid}
        # How later tasks find the worker of their own executor (eddy.frames).
        record.update(hostname=socket.gethostname(), daemon=os.getppid())
        yield json.dumps(record)

    return start


_SPARK_INT = {"Int8": "ByteType", "Int16": "ShortType", "Int32": "IntegerType"}


def _spark_schema(columns):
    """The Spark schema of frame columns: their source types where the frame kept them."""
    from pyspark.sql import types as T

    fields = []
    for c in columns:
        t, arrow = c["type"], c.get("arrow_type") or ""
        if t == "int":
            spark = getattr(T, _SPARK_INT.get(arrow, "LongType"))()
        elif t == "real" and arrow.startswith("Decimal128("):
            precision, scale = (int(x) for x in arrow[len("Decimal128("):-1].split(","))
            spark = T.DecimalType(precision, scale)
        elif t == "real":
            spark = T.FloatType() if arrow == "Float32" else T.DoubleType()
        elif t == "bool":
            spark = T.BooleanType()
        elif t == "time":
            if arrow == "Date32":
                spark = T.DateType()
            elif arrow.startswith("Timestamp(") and "," not in arrow:
                spark = T.TimestampNTZType()  # a zone-less time from Spark
            else:
                spark = T.TimestampType()  # with a zone, or imported (epoch milliseconds, as H2O)
        else:
            spark = T.StringType()
        fields.append(T.StructField(c["name"], spark, not c.get("not_null", False)))
    return T.StructType(fields)


_KEPT_TYPES = (
    "ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "DecimalType",
    "BooleanType", "StringType", "DateType", "TimestampType", "TimestampNTZType",
)


def _refused_column(field):
    """Why a frame cannot hold this Spark column and what to do, or ``None`` if it can."""
    kind = type(field.dataType).__name__
    if kind in _KEPT_TYPES:
        return None
    name = field.name
    ref = "`" + name.replace("`", "``") + "`"
    col = f'F.col("{ref}")'
    if kind == "StructType":
        fix = f'select its fields, e.g. df.select("{ref}.*"), or make it text: df.withColumn("{name}", F.to_json({col}))'
    elif kind in ("ArrayType", "MapType", "VariantType"):
        fix = f'make it text: df.withColumn("{name}", F.to_json({col})), or drop it'
    elif kind == "NullType":
        fix = f'give it a type: df.withColumn("{name}", {col}.cast("string"))'
    else:
        fix = f'cast it first: df.withColumn("{name}", {col}.cast("string")), or drop it'
    return f'column "{name}" is {field.dataType.simpleString()} ({fix})'


def check_convertible(schema, categorical=()):
    """Raises :class:`EddyError` before any Spark job if a DataFrame of ``schema`` cannot become
    a frame: every column refused is named, with what to do."""
    problems = [p for p in (_refused_column(f) for f in schema.fields) if p]
    if problems:
        problems[-1] += (
            "; Eddy frames hold integers, reals, decimals, booleans, strings, dates and timestamps"
        )
    names = [f.name for f in schema.fields]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            f'{names.count(dup)} columns are named "{dup}" (a frame\'s columns need distinct names: '
            "rename them first, e.g. df.toDF(*new_names))"
        )
    kinds = {f.name: type(f.dataType).__name__ for f in schema.fields}
    for c in categorical:
        if c not in kinds:
            problems.append(f'categorical column "{c}" is not in the DataFrame (its columns are {names})')
        elif kinds[c] != "StringType":
            problems.append(f'categorical column "{c}" is not a string column (cast it to string first, or leave it out)')
    if problems:
        raise EddyError("cannot convert the DataFrame: " + "; ".join(problems))


class EddyContext(Client):
    """An Eddy cloud attached to a Spark application. Use :meth:`get_or_create`."""

    def __init__(
        self, spark, nodes, memory, port, timeout, heartbeat_interval, heartbeat_timeout, network, name, keep_logs=False
    ):
        self._spark = spark
        self._sc = spark.sparkContext
        self._nodes = nodes
        self._settings = {
            "memory": memory,
            "port": port,
            "timeout": f"{int(timeout)}s",
            "heartbeat_interval": heartbeat_interval,
            "heartbeat_timeout": heartbeat_timeout,
            "network": network,
            "name": name or f"eddy-spark-{secrets.token_hex(3)}",
        }
        self._timeout = timeout
        self._keep_logs = keep_logs
        self._local_mode = _is_local_mode(self._sc.master)
        self._driver = None
        self._dir = None
        self._local_workers = []
        self.driver_log = None
        self._status_file = None
        self.workers = []
        # Every worker's executor by node address, lost ones too (status() names them).
        self._executor_of = {}
        # Workers started in place of lost ones: worker, executor, node, seconds from the loss
        # being listed to the new worker found in the cloud.
        self.replacements = []
        # Why the last attempt to start a replacement failed, if it did.
        self.replacement_error = None
        self._stopping = threading.Event()
        self._replacer = None
        self._replacement_listed = {}
        self._executors_at_start = set()
        self._driver_host = "127.0.0.1"
        self._gather = None
        self.rest_url = None
        self.observer_url = None
        # eddy.client.Client's requests go to the observer, once it joined.
        self.url = None
        self._request_timeout = 60
        # The cloud's REST access token (send it as `Authorization: Bearer <token>`).
        self.rest_token = None
        # The JVM connector's context (ai.eddy.spark.EddyContext) when its jar is on Spark's
        # classpath: conversions then run in the executors' JVMs. None: mapInArrow and Flight.
        self._jvm_context = None
        self._prefer_python = False

    @classmethod
    def get_or_create(
        cls,
        spark,
        nodes=None,
        memory="1g",
        port=54321,
        timeout=120,
        heartbeat_interval="1s",
        heartbeat_timeout="10s",
        network=None,
        name=None,
        keep_logs=False,
    ):
        """The running context, or a new cloud with one worker per executor.

        ``nodes``: workers (default: the executors Spark was asked for, else those alive once
        their number has held for 3 s; in local mode one, started next to the driver);
        ``memory``: each worker's frame budget; ``port``: the workers' base REST port (0 = any
        free port); ``timeout``: seconds until the cloud must have formed; ``network``: a CIDR
        the workers bind inside (default: the executor's own address); ``keep_logs``: keep the
        working directory with the driver's (and local workers') logs after ``stop()``
        (``ec.log_dir``); the secret file is removed anyway.
        """
        global _ACTIVE
        with _LOCK:
            if _ACTIVE is not None and _ACTIVE.is_running():
                return _ACTIVE
            ctx = cls(spark, nodes, memory, port, timeout, heartbeat_interval, heartbeat_timeout, network, name, keep_logs)
            try:
                ctx._start()
            except BaseException:
                ctx._teardown()
                raise
            _ACTIVE = ctx
            return ctx

    # -- start ---------------------------------------------------------------------------

    def _check_conf(self):
        conf = self._sc.getConf()
        dynamic = _truthy(conf.get("spark.dynamicAllocation.enabled", "false"))
        self._allow_dynamic = _truthy(conf.get("eddy.spark.allowDynamicAllocation", "false"))
        if dynamic and not self._allow_dynamic:
            raise EddyError(
                "Spark dynamic allocation is on (spark.dynamicAllocation.enabled): executors come and go, "
                "and a worker's part of every frame goes with its executor. Turn it off, or set "
                "eddy.spark.allowDynamicAllocation=true to accept that each removed executor takes its worker out of the cloud "
                "(frames read from files are read again; others are lost unless kept with replicas)."
            )

    def _wait_for_executors(self):
        expected = self._nodes or _expected_executors(self._sc)
        deadline = time.time() + min(self._timeout, 60)
        live = _live_executors(self._sc)
        # Without a number to wait for, executors still registering would be left out: wait
        # until the count has held for a few seconds.
        settle, changed = 3.0, time.time()
        while time.time() < deadline:
            now = _live_executors(self._sc)
            if now != live:
                live, changed = now, time.time()
            if expected is not None and live >= expected:
                break
            if expected is None and live > 0 and time.time() - changed >= settle:
                break
            time.sleep(0.1)
        n = self._nodes or expected or live
        if n < 1:
            raise EddyError("no Spark executors are running; Eddy runs one worker in each")
        if live < n:
            raise EddyError(f"{n} workers need {n} executors, but {live} are running after {min(self._timeout, 60)} s")
        return n

    def _mark(self, what):
        self.timings.append((what, time.time() - self._t0))

    def _start(self):
        self._t0 = time.time()
        self.timings = []
        self._check_conf()
        n = (self._nodes or 1) if self._local_mode else self._wait_for_executors()
        driver_bin = find_binary("eddy-driver")
        mapper_bin = find_binary("eddy-mapper")
        self._dir = tempfile.mkdtemp(prefix="eddy-spark-")
        secret = secrets.token_hex(32)
        self._secret = secret
        self.rest_token = rest_token(secret, self._settings["name"])
        secret_file = _secret_file(secret, self._dir, "secret")
        # The CA the workers' certificates chain to; executors verify Flight against it.
        self._cloud_ca = subprocess.run(
            [driver_bin, "cloud-ca", "--secret-file", secret_file],
            check=True, capture_output=True, timeout=30,
        ).stdout
        gather_file = os.path.join(self._dir, "gather")
        notify_file = os.path.join(self._dir, "leader")
        self._status_file = os.path.join(self._dir, "status.json")
        self.driver_log = os.path.join(self._dir, "eddy-driver.log")
        driver_host = self._sc.getConf().get("spark.driver.host", "127.0.0.1")
        self._driver_host = driver_host
        s = self._settings
        command = [
            driver_bin, "attach",
            "--nodes", str(n),
            "--secret-file", secret_file,
            "--gather-file", gather_file,
            "--notify", notify_file,
            "--status-file", self._status_file,
            "--stop-on-stdin-eof",
            "--driver-ip", driver_host,
            "--port", str(s["port"]),
            "--timeout", s["timeout"],
            "--heartbeat-interval", s["heartbeat_interval"],
            "--heartbeat-timeout", s["heartbeat_timeout"],
            "--name", s["name"],
        ]
        with open(self.driver_log, "ab") as log:
            self._driver = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True, close_fds=True
            )
        self._mark("observer started")
        gather = self._wait_for_file(gather_file, "the gather service to listen", 30)
        self._gather = gather
        self._mark("gather listening")

        if self._local_mode:
            self.workers = self._start_local_workers(mapper_bin, n, gather, driver_host)
        else:
            self.workers = self._start_in_executors(mapper_bin, n, gather)
            at_start = {e for e, _ in self._executors() if e is not None}
            self._executors_at_start = at_start if len(at_start) == len(self.workers) else set()
        self._mark("workers started")
        by_executor = {}
        for w in self.workers:
            by_executor.setdefault(w["executor"], []).append(w["worker"])
        doubled = {e: ws for e, ws in by_executor.items() if len(ws) > 1}
        if doubled and not self._local_mode:
            raise EddyError(
                f"workers {doubled} landed on the same executor: Eddy needs one worker per executor "
                "(give each executor one task slot, spark.executor.cores=1 with spark.task.cpus=1, or ask for fewer nodes)"
            )

        leader = self._wait_for_file(notify_file, f"the cloud of {n} to form", self._timeout)
        self._mark("cloud formed")
        self.rest_url = "http://" + leader.splitlines()[0].strip()
        self.observer_url = self._wait_for_observer()
        self.url = self.observer_url
        self._locate_workers()
        self._executor_of = {w["node"]: w["executor"] for w in self.workers}
        self._share_with_jvm()
        self._replacer = threading.Thread(target=self._replace_lost_workers, name="eddy-replacer", daemon=True)
        self._replacer.start()

    def _share_with_jvm(self):
        """Hands the cloud to the JVM connector if its jar is on the classpath (``spark.jars``),
        so that conversions skip Python; does nothing without it, or when
        ``eddy.spark.connector`` is ``python``."""
        setting = self._sc.getConf().get("eddy.spark.connector", "auto").strip().lower()
        if setting == "python":
            return
        try:
            jvm = self._sc._jvm
            adopt = jvm.ai.eddy.spark.EddyContext.adopt
            shared = {
                "name": self._settings["name"],
                "secret": self._secret,
                "ca": self._cloud_ca.decode() if self._cloud_ca else None,
                "observer_url": self.observer_url,
                "rest_token": self.rest_token,
                "workers": [{k: w.get(k) for k in ("worker", "ip", "grpc_port", "host")} for w in self.workers],
            }
            self._jvm_context = adopt(self._spark._jsparkSession, json.dumps(shared))
        except Exception as e:  # no jar (py4j finds no such class): the Python path
            if setting == "jvm":
                raise EddyError(f"eddy.spark.connector=jvm, but the connector's jar is not on Spark's classpath ({e}); add it with spark.jars") from None
            self._jvm_context = None

    @property
    def data_path(self):
        """How conversions run: ``"jvm"`` (the connector jar on Spark's classpath) or ``"python"``
        (``mapInArrow`` and Flight). Set it to ``"python"`` to convert without the jar's path,
        or back to ``"jvm"`` (which needs the jar)."""
        return "jvm" if self._jvm_context is not None and not self._prefer_python else "python"

    @data_path.setter
    def data_path(self, path):
        if path not in ("jvm", "python"):
            raise ValueError(f'data_path is "jvm" or "python", not {path!r}')
        if path == "jvm" and self._jvm_context is None:
            raise EddyError("the JVM connector's jar is not on Spark's classpath: add it with spark.jars")
        self._prefer_python = path == "python"

    def _wait_for_observer(self):
        """The observer's REST URL: the driver writes the leader's address before the observer
        has joined, and a request to the leader fails once that worker is lost."""
        deadline = time.time() + min(self._timeout, 60)
        while time.time() < deadline:
            status = self._status()
            if status.get("observer_rest_url"):
                return status["observer_rest_url"]
            if status.get("phase") == "failed":
                raise EddyError(f"{status.get('error')}; {self._log_report()}")
            if self._driver.poll() is not None:
                break
            time.sleep(0.05)
        raise EddyError(f"the observer did not join the cloud; {self._log_report()}")

    def _status(self):
        """The driver's ``--status-file`` (phase, workers, leader, observer), or ``{}`` before
        it is written; the driver replaces it whole, so it is never half a document."""
        if not self._status_file:
            return {}
        try:
            with open(self._status_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _start_in_executors(self, mapper_bin, n, gather):
        # Once per Spark application: a stopped and recreated SparkContext (a notebook that
        # restarts Spark) has none of the previous one's files.
        added = (self._sc.applicationId, mapper_bin)
        if added not in _ADDED_MAPPERS:
            self._sc.addFile(mapper_bin)
            _ADDED_MAPPERS.add(added)
        rdd = self._sc.parallelize(range(n), n)
        starter = _worker_starter(gather, self._secret, self._settings)
        stage = rdd.mapPartitions(starter) if self._allow_dynamic else rdd.barrier().mapPartitions(starter)
        return sorted((json.loads(x) for x in stage.collect()), key=lambda w: w["worker"])

    def _start_local_workers(self, mapper_bin, n, gather, host):
        """Local mode: the workers run on this machine as children of this process (reaped by
        ``stop()``), bound to the driver's address; their logs go to the working directory."""
        return [self._start_local_worker(mapper_bin, k, gather, host) for k in range(n)]

    def _start_local_worker(self, mapper_bin, k, gather, host):
        log_path = os.path.join(self._dir, f"eddy-mapper-{k}.log")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [mapper_bin],
                env=_worker_env(gather, os.path.join(self._dir, "secret"), self._settings, k, host),
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        self._local_workers.append(proc)
        # Every task runs in this machine's Python workers: same host name, so eddy.frames
        # picks these workers as local ones.
        return {"worker": k, "executor": "driver", "host": host, "pid": proc.pid, "log": log_path,
                "hostname": socket.gethostname(), "daemon": None}

    # -- lost workers ----------------------------------------------------------------------

    def _replace_lost_workers(self):
        """Runs beside the application until ``stop()``: when the driver lists a lost worker
        under ``replacing`` (its process ended and the cloud removed it), starts that worker
        again on an executor that has none (the one Spark started in place of the lost
        executor), or in local mode next to the driver; the new process joins the cloud as a
        new member, and the cloud hands it the frames' metadata."""
        pending = {}  # worker -> (record of the process started, when)
        busy = {}  # executor id -> times a task there found a worker already running
        attempts = {}
        while not self._stopping.wait(0.5):
            try:
                self._replace_once(pending, busy, attempts)
            except Exception as e:  # the thread carries on; the reason stays for users to read
                self.replacement_error = f"watching for lost workers failed: {e}"

    def _replace_once(self, pending, busy, attempts):
        """One look at the status file: adopts the replacements that registered, starts the
        ones still wanted."""
        status = self._status()
        replacing = [int(i) for i in status.get("replacing", [])]
        for worker in list(pending):
            if worker not in replacing and self._adopt(pending[worker][0], status):
                del pending[worker]
        for worker in replacing:
            if self._stopping.is_set():
                return
            since = pending.get(worker, (None, 0))[1]
            # A worker started but not registered within the timeout is started again.
            if worker in pending and time.time() - since < self._timeout:
                continue
            if attempts.get(worker, 0) >= 10:
                continue
            listed = self._replacement_listed.setdefault(worker, time.time())
            try:
                record = self._start_replacement(worker, busy)
            except Exception as e:  # Spark refused the job, the executor died meanwhile
                self.replacement_error = f"starting worker {worker} again failed: {e}"
                attempts[worker] = attempts.get(worker, 0) + 1
                continue
            if record is not None:
                record["listed"] = listed
                pending[worker] = (record, time.time())
                attempts[worker] = attempts.get(worker, 0) + 1

    def _start_replacement(self, worker, busy):
        """Starts ``worker`` on an executor without one; ``None`` while there is none."""
        if self._local_mode:
            return self._start_local_worker(find_binary("eddy-mapper"), worker, self._gather, self._driver_host)
        executors = self._executors()
        with_workers = {w["executor_id"] for w in self.workers if w.get("executor_id")}
        # Executors that had a worker when the cloud formed are known only when Spark had
        # exactly one per worker; others are found by trying (their task reports `busy`).
        with_workers |= self._executors_at_start
        free = [(e, host) for e, host in executors if e not in with_workers and busy.get(e, 0) < 3]
        if not free:
            return None
        executor_id, host = free[0]
        # Spark runs the task on that executor if it frees a slot within spark.locality.wait.
        if executor_id is None:
            tasks = self._sc.parallelize([0], 1)
        else:
            tasks = self._positions([f"executor_{host}_{executor_id}"], note_locality=False).rdd
        self._sc.setJobGroup("eddy-replace-worker", f"Eddy: start worker {worker} again on executor {executor_id}", False)
        try:
            started = tasks.mapPartitions(_worker_starter(self._gather, self._secret, self._settings, [worker])).collect()
        finally:
            self._sc.setLocalProperty("spark.jobGroup.id", None)
        record = json.loads(started[0])
        if "busy" in record:
            busy[executor_id] = busy.get(executor_id, 0) + 1
            return None
        record["executor_id"] = executor_id
        if executor_id is not None:
            # Spark's name for it (the executors page), where the start knew only an address.
            record["executor"] = f"{record['host']} (executor {executor_id})"
        return record

    def _executors(self):
        """Spark's live executors as (id, host), from the application's status store."""
        try:
            listed = self._sc._jsc.sc().statusStore().executorList(True)
        except Exception:  # another Spark: no way to aim; tasks find a free executor by trying
            return [(None, "")]
        found = []
        it = listed.iterator()
        while it.hasNext():
            e = it.next()
            if e.id() != "driver":
                found.append((e.id(), e.hostPort().rsplit(":", 1)[0]))
        return found

    def _adopt(self, record, status):
        """Once the started replacement registered and joined the cloud, its node address joins
        ``self.workers`` in place of the lost worker's; returns whether it did."""
        registered = {str(w["worker_id"]): w for w in status.get("workers", [])}
        entry = registered.get(str(record["worker"]))
        if entry is None or entry.get("pid") != record["pid"]:
            self.replacement_error = f"worker {record['worker']} started on executor {record['executor']} did not register"
            return True
        nodes = {n["ip_port"]: n for n in self.cloud().get("nodes", [])}
        node = nodes.get(entry["node"], {})
        if node.get("grpc_port") is None or not node.get("healthy", True):
            return False  # registered; a member once heartbeats have gone both ways
        record["node"] = entry["node"]
        record["ip"] = entry["node"].rsplit(":", 1)[0]
        record["grpc_port"] = node["grpc_port"]
        self._executor_of[record["node"]] = record["executor"]
        self.workers = sorted([w for w in self.workers if w["worker"] != record["worker"]] + [record], key=lambda w: w["worker"])
        self.replacements.append(
            {"worker": record["worker"], "executor": record["executor"], "node": record["node"],
             "seconds": round(time.time() - record.pop("listed"), 2)}
        )
        self._replacement_listed.pop(record["worker"], None)
        if self._jvm_context is not None:
            self._share_with_jvm()  # the JVM's tasks write to the new worker too
        return True

    def _locate_workers(self):
        """Adds each worker's node address (IP, REST and gRPC ports) to ``self.workers``."""
        registered = {str(w["worker_id"]): w["node"] for w in self._status().get("workers", [])}
        grpc_ports = {n["ip_port"]: n.get("grpc_port") for n in self.cloud().get("nodes", [])}
        for w in self.workers:
            ip_port = registered.get(str(w["worker"]))
            if ip_port is None or grpc_ports.get(ip_port) is None:
                raise EddyError(f"worker {w['worker']} on executor {w['executor']} is not in the cloud; {self._log_report()}")
            w["node"] = ip_port
            w["ip"] = ip_port.rsplit(":", 1)[0]
            w["grpc_port"] = grpc_ports[ip_port]

    def _log_report(self, lines=40):
        """The end of the driver log for an error message, and where the whole log is."""
        text = self._log().rstrip().splitlines()
        where = (
            f"driver log {self.driver_log}"
            if self._keep_logs
            else "driver log (removed on stop; pass keep_logs=True to keep it)"
        )
        return f"the last {min(lines, len(text))} lines of the {where}:\n" + "\n".join(text[-lines:])

    @property
    def log_dir(self):
        """The working directory with the driver's log (kept after ``stop()`` with ``keep_logs=True``)."""
        return self._dir

    def _log(self):
        if not self.driver_log:
            return ""
        try:
            with open(self.driver_log, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _wait_for_file(self, path, what, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read().strip()
                if text:
                    return text
            if self._driver.poll() is not None:
                raise EddyError(f"eddy-driver attach exited ({self._driver.returncode}) waiting for {what}; {self._log_report()}")
            time.sleep(0.05)
        raise EddyError(f"timed out after {timeout} s waiting for {what}; {self._log_report()}")

    # -- use -----------------------------------------------------------------------------

    def is_running(self):
        """The observer (``eddy-driver attach``) is up."""
        return self._driver is not None and self._driver.poll() is None

    # -- frames: frames(), frame(), head(), summary(), delete(), import_file() come from
    # eddy.client.Client, against the observer --------------------------------------------

    def as_frame(self, df, name=None, categorical=()):
        """Sends a Spark DataFrame to the cloud as a frame; returns the frame's id.

        Each partition becomes one chunk on the worker of its executor (``mapInArrow`` and
        Arrow Flight, no pickling). ``categorical``: string columns to store as categoricals.
        Types: integers, floats, decimals (exact, precision and scale kept), booleans, strings,
        timestamps and dates; others (binary, nested, intervals) are refused here, before any
        Spark job, with the column named and what to do. A DataFrame without rows or without
        partitions becomes an empty frame of its columns; one without columns keeps its rows."""
        fr = _frames
        from pyspark.sql.pandas.types import to_arrow_schema

        check_convertible(df.schema, categorical)
        self.check()
        frame_id = fr.new_frame_id(name)
        if any(f["frame_id"] == frame_id for f in self.frames()):
            raise EddyError(f"frame {frame_id} exists already; delete it or pick another name")
        t0 = time.time()
        if self.data_path == "jvm" and df.columns:
            return self._as_frame_in_jvm(df, frame_id, categorical, t0)
        empty_schema = to_arrow_schema(df.schema).serialize().to_pybytes()
        names = df.columns
        nullable = [f.nullable for f in df.schema.fields]
        put = fr.put_partitions(
            frame_id,
            self.workers,
            self._secret,
            self._settings["name"],
            self._cloud_ca,
            list(categorical),
            empty_schema,
            names,
            nullable,
        )

        def put_all(data):
            if names:
                data = data.toDF(*fr.safe_names(len(names)))
            else:
                from pyspark.sql import functions as F

                data = data.select(F.lit(True).alias("_eddy_rows"))
            return [json.loads(r.reply) for r in data.mapInArrow(put, "reply string").collect()]

        try:
            replies = put_all(df)
            if not replies:
                # No partitions at all (limit(0), a filter Spark knows is false): one empty
                # partition puts one empty chunk, which carries the columns.
                replies = put_all(self._spark.createDataFrame(self._sc.parallelize([], 1), df.schema))
            t_put = time.time()
            columns = replies[0]["columns"]
            body = {
                "columns": columns,
                "chunks": [{k: r[k] for k in ("node", "rows", "bytes")} | {"index": r["chunk"]} for r in replies],
                "sources": ["Spark DataFrame"],
            }
            info = self._request("POST", f"{frame_path(frame_id)}/commit", body)["frame"]
        except BaseException:
            try:
                self._request("DELETE", frame_path(frame_id))
            except EddyError:
                pass  # not registered: the sweep of staged chunks ran anyway
            raise
        self.last_conversion = {
            "frame": frame_id,
            "rows": info["rows"],
            "chunks": len(replies),
            "local_chunks": sum(1 for r in replies if r.get("local")),
            "seconds": time.time() - t0,
            "put_seconds": t_put - t0,
            "bytes_in_memory": info["bytes_in_memory"],
        }
        return frame_id

    def _as_frame_in_jvm(self, df, frame_id, categorical, t0):
        """``as_frame`` through the JVM connector: the executors' tasks write Arrow from Spark's
        rows to their workers, no Python worker involved."""
        from py4j.protocol import Py4JJavaError

        gateway = self._sc._gateway
        names = gateway.new_array(gateway.jvm.String, len(categorical))
        for k, c in enumerate(categorical):
            names[k] = c
        try:
            self._jvm_context.asFrame(df._jdf, frame_id, names)
        except Py4JJavaError as e:
            raise EddyError(_java_message(e)) from None
        done = dict(self._jvm_context.lastConversion())
        self.last_conversion = {
            "frame": frame_id,
            "rows": done["rows"],
            "chunks": done["chunks"],
            "local_chunks": done["local_chunks"],
            "seconds": time.time() - t0,
            "put_seconds": done["seconds"],
            "bytes_in_memory": done["bytes_in_memory"],
            "path": "jvm",
        }
        return frame_id

    def as_spark_frame(self, frame):
        """A Spark DataFrame of a frame's rows, in the frame's order: one partition per chunk,
        read from the worker holding it. Columns get the Spark types they came from (for
        imported frames: long, double, boolean, string, timestamp)."""
        fr = _frames
        from pyspark.sql import types as T
        from pyspark.sql.pandas.types import to_arrow_schema

        info = self.frame_info(frame)
        schema = _spark_schema(info["columns"])
        if not info["columns"]:
            # Rows without columns carry nothing to read: Spark makes them itself.
            return self._spark.range(0, info["rows"], 1, max(1, len(info["chunks"]))).select()
        if self.data_path == "jvm":
            from pyspark.sql import DataFrame

            # Columnar reads in the executors' JVMs, each preferring its chunk's host.
            self.last_read_locality = True
            return DataFrame(self._jvm_context.asSparkFrame(info["frame_id"]), self._spark)
        large = _truthy(self._spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false"))
        # Spark sees placeholder names (a dotted name would resolve as a struct field), renamed
        # back at the end; the batches carry them too, the target schema says so.
        names = schema.names
        safe = fr.safe_names(len(names))
        schema = T.StructType([T.StructField(n, f.dataType, f.nullable) for n, f in zip(safe, schema.fields)])
        arrow_schema = to_arrow_schema(schema, prefers_large_types=large).serialize().to_pybytes()
        chunks = [{"index": c["index"], "node": {"ip": c["node"]["ip"], "grpc_port": c["node"]["grpc_port"]}} for c in info["chunks"]]
        get = fr.get_chunks(info["frame_id"], chunks, self._secret, self._settings["name"], self._cloud_ca, arrow_schema)
        host_of = {w["node"]: w["host"] for w in self.workers}
        hosts = [host_of.get(f"{c['node']['ip']}:{c['node']['rest_port']}", c["node"]["ip"]) for c in info["chunks"]]
        return self._positions(hosts).mapInArrow(get, schema).toDF(*names)

    def _positions(self, hosts, note_locality=True):
        """A DataFrame of chunk positions, one partition each, whose tasks prefer the given
        hosts (Spark's ``makeRDD`` with locations, reached through the JVM; PySpark has no
        such call). Falls back to ``range`` without preferences if the JVM refuses."""
        from pyspark.sql import DataFrame

        n = len(hosts)
        try:
            jvm = self._sc._jvm
            convert = jvm.scala.jdk.javaapi.CollectionConverters
            items = jvm.java.util.ArrayList()
            for position, host in enumerate(hosts):
                preferred = jvm.java.util.ArrayList()
                preferred.add(host)
                items.add(jvm.scala.Tuple2(str(position), convert.asScala(preferred).toSeq()))
            tag = jvm.scala.reflect.ClassTag.apply(jvm.java.lang.Class.forName("java.lang.String"))
            rdd = self._sc._jsc.sc().makeRDD(convert.asScala(items).toSeq(), tag)
            dataset = self._spark._jsparkSession.createDataset(rdd, jvm.org.apache.spark.sql.Encoders.STRING())
            if note_locality:
                self.last_read_locality = True
            return DataFrame(dataset.toDF(), self._spark)
        except Exception:  # another Spark or Scala version: same result, no locality
            if note_locality:
                self.last_read_locality = False
            return self._spark.range(0, n, 1, max(1, n)).selectExpr("cast(id as string) as value")

    def status(self):
        """Health of the cloud: unhealthy workers (silent, not yet removed) and lost ones (removed;
        the cloud carries on without them), named by Spark executor."""
        cloud = self.cloud()
        executor_of = self._executor_of
        bad = [
            {"node": n["ip_port"], "executor": executor_of.get(n["ip_port"], "unknown")}
            for n in cloud.get("nodes", [])
            if not n.get("healthy", True)
        ]
        lost = [
            {"node": n["ip_port"], "executor": executor_of.get(n["ip_port"], "unknown"), "reason": n.get("reason", "")}
            for n in cloud.get("lost_nodes", [])
        ]
        return {
            "healthy": bool(cloud.get("cloud_healthy")) and not bad,
            "size": cloud.get("cloud_size"),
            "unhealthy": bad,
            "lost": lost,
        }

    def check(self):
        """Raises :class:`EddyError` naming the executors whose workers went silent. Lost workers
        (removed: the cloud re-read their chunks of imported frames and carries on) are in
        ``status()["lost"]``; a frame that could not be kept says so when used."""
        st = self.status()
        if not st["healthy"]:
            names = ", ".join(f"{b['node']} on executor {b['executor']}" for b in st["unhealthy"]) or "unknown workers"
            raise EddyError(f"the Eddy cloud is unhealthy: {names} went silent; work waits until the other workers remove them")
        return st

    def stop(self):
        """Stops every worker and the observer at once."""
        global _ACTIVE
        self._stopping.set()
        if self._replacer is not None and self._replacer is not threading.current_thread():
            # A replacement being started is a short Spark job; it may finish.
            self._replacer.join(timeout=30)
        try:
            if self.is_running() and self.observer_url:
                req = urllib.request.Request(
                    self.observer_url + "/3/Shutdown", method="POST", data=b"", headers={"Authorization": f"Bearer {self.rest_token}"}
                )
                try:
                    urllib.request.urlopen(req, timeout=10).read()
                except OSError:
                    pass
        finally:
            self._teardown()
            with _LOCK:
                if _ACTIVE is self:
                    _ACTIVE = None

    def _teardown(self):
        self._stopping.set()
        if self._jvm_context is not None:
            try:
                self._jvm_context.stop()  # forgets the adopted cloud; the cloud stops below
            except Exception:
                pass  # the JVM is gone already (Spark stopped first)
            self._jvm_context = None
        if self._driver is not None:
            try:
                if self._driver.stdin:
                    self._driver.stdin.close()  # the observer stops the cloud on EOF
            except OSError:
                pass
            try:
                self._driver.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._driver.kill()
                self._driver.wait()
        # Local workers are our children: they exit once the driver is gone (or were told to
        # by /3/Shutdown); wait for them so none is left a zombie, and end the stragglers.
        deadline = time.time() + 20
        for proc in self._local_workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._remove_leftovers()

    def _remove_leftovers(self):
        """The secret goes always; the working directory (logs) unless ``keep_logs``."""
        if not self._dir:
            return
        try:
            os.remove(os.path.join(self._dir, "secret"))
        except FileNotFoundError:
            pass
        if not self._keep_logs:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self):
        return f"EddyContext({self._settings['name']}, {len(self.workers)} workers, {self.rest_url})"
