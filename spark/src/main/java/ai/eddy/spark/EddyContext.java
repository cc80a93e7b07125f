package ai.eddy.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import scala.reflect.ClassTag$;

/**
 * An Eddy cloud attached to a Spark application, from Scala or Java, as the Python
 * {@code eddy.spark.EddyContext} does it: every executor runs one {@code eddy-mapper} worker,
 * the driver runs {@code eddy-driver attach} (the gather service and the observer, which holds
 * no data); in local mode the workers run beside the driver.
 *
 * <pre>
 * val ec = EddyContext.getOrCreate(spark)
 * val id = ec.asFrame(df)                 // or df.write.format("eddy").mode("append").save(id)
 * val back = ec.asSparkFrame(id)          // or spark.read.format("eddy").load(id)
 * ec.stop()
 * </pre>
 *
 * <p>The binaries are found in the Spark setting {@code spark.eddy.binDir}, then
 * {@code $EDDY_BIN_DIR}, then {@code PATH}. Settings ({@code spark.eddy.*} or the map given to
 * {@link #getOrCreate(SparkSession, Map)}): {@code nodes}, {@code memory} (each worker's frame
 * budget, {@code 1g}), {@code port} (54321), {@code timeout} (seconds until the cloud must have
 * formed, 120), {@code name}, {@code network} (a CIDR the workers bind inside).
 */
public final class EddyContext {
  private static final Pattern LOCAL_MODE = Pattern.compile("local(\\[[^\\]]*\\])?");
  private static final Pattern LOCAL_CLUSTER = Pattern.compile("local-cluster\\[(\\d+)");
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(EddyContext.class);
  private static EddyContext activeContext;

  private final SparkSession spark;
  private final Map<String, String> settings;
  private final boolean localMode;
  private final int timeoutSeconds;
  private Path dir;
  private Process driver;
  private OutputStream driverStdin;
  private final List<Process> localWorkers = new ArrayList<>();
  private CloudAccess access;
  private Rest rest;
  private String restToken;
  private boolean external;
  /** The records of the workers started: worker, executor, host, pid. */
  private final List<Map<String, Object>> workers = new ArrayList<>();
  /** The last {@code asFrame}: frame, rows, chunks, chunks written on their own host, seconds. */
  private Map<String, Object> lastConversion;
  private long conversionStarted;

  private EddyContext(SparkSession spark, Map<String, String> given) {
    this.spark = spark;
    SparkConf conf = spark.sparkContext().getConf();
    Map<String, String> s = new HashMap<>();
    s.put("memory", "1g");
    s.put("port", "54321");
    s.put("timeout", "120");
    s.put("heartbeat_interval", "1s");
    s.put("heartbeat_timeout", "10s");
    s.put("name", "eddy-spark-" + HexFormat.of().formatHex(randomBytes(3)));
    for (String key : List.of("nodes", "memory", "port", "timeout", "name", "network", "heartbeat_interval", "heartbeat_timeout")) {
      String fromConf = conf.get("spark.eddy." + key, null);
      if (fromConf != null) {
        s.put(key, fromConf);
      }
    }
    s.putAll(given);
    this.settings = s;
    this.localMode = LOCAL_MODE.matcher(spark.sparkContext().master().strip()).matches();
    this.timeoutSeconds = Integer.parseInt(s.get("timeout"));
  }

  /** The running context, or a new cloud with one worker per executor. */
  public static EddyContext getOrCreate(SparkSession spark) {
    return getOrCreate(spark, Map.of());
  }

  /** As {@link #getOrCreate(SparkSession)}, with settings (see the class's text). */
  public static synchronized EddyContext getOrCreate(SparkSession spark, Map<String, String> settings) {
    if (activeContext != null && activeContext.isRunning()) {
      return activeContext;
    }
    EddyContext ec = new EddyContext(spark, settings);
    try {
      ec.start();
    } catch (RuntimeException e) {
      ec.teardown();
      throw e;
    }
    activeContext = ec;
    return ec;
  }

  /**
   * Adopts a cloud that another front end started in this application (the Python context
   * calls this when the connector is on the classpath): JSON with {@code name}, {@code secret},
   * {@code ca} (PEM or null), {@code observer_url}, {@code rest_token} and {@code workers}
   * ({@code worker}, {@code ip}, {@code grpc_port}, {@code host}).
   */
  public static synchronized EddyContext adopt(SparkSession spark, String json) throws IOException {
    JsonNode c = Rest.JSON.readTree(json);
    EddyContext ec = new EddyContext(spark, Map.of("name", c.get("name").asText()));
    ec.external = true;
    List<CloudAccess.Worker> ws = new ArrayList<>();
    for (JsonNode w : c.get("workers")) {
      ws.add(new CloudAccess.Worker(w.get("worker").asInt(), w.get("ip").asText(), w.get("grpc_port").asInt(), w.path("host").asText(null), null));
    }
    ec.restToken = c.get("rest_token").asText();
    ec.rest = new Rest(c.get("observer_url").asText(), ec.restToken);
    String ca = c.hasNonNull("ca") ? c.get("ca").asText() : null;
    ec.access = new CloudAccess(c.get("name").asText(), c.get("secret").asText(), ca, ws, ec.rest);
    activeContext = ec;
    return ec;
  }

  /** The context the {@code eddy} data source uses. */
  static synchronized EddyContext active() {
    if (activeContext == null || !activeContext.isRunning()) {
      throw new EddyException("no Eddy cloud runs in this application: call EddyContext.getOrCreate(spark) first");
    }
    return activeContext;
  }

  private static byte[] randomBytes(int n) {
    byte[] b = new byte[n];
    new SecureRandom().nextBytes(b);
    return b;
  }

  // -- start ---------------------------------------------------------------------------------

  private void start() {
    long t0 = System.nanoTime();
    SparkContext sc = spark.sparkContext();
    SparkConf conf = sc.getConf();
    if (conf.getBoolean("spark.dynamicAllocation.enabled", false) && !conf.getBoolean("eddy.spark.allowDynamicAllocation", false)) {
      throw new EddyException("Spark dynamic allocation is on (spark.dynamicAllocation.enabled): executors come and go, and a "
          + "worker's part of every frame goes with its executor. Turn it off, or set eddy.spark.allowDynamicAllocation=true to accept it.");
    }
    int n = localMode ? Integer.parseInt(settings.getOrDefault("nodes", "1")) : waitForExecutors(sc);
    String driverBin = findBinary("eddy-driver", conf);
    String mapperBin = findBinary("eddy-mapper", conf);
    try {
      dir = Files.createTempDirectory("eddy-spark-");
      String secret = HexFormat.of().formatHex(randomBytes(32));
      Path secretFile = WorkerStarter.secretFile(secret, dir, "secret");
      Process ca = new ProcessBuilder(driverBin, "cloud-ca", "--secret-file", secretFile.toString()).redirectErrorStream(true).start();
      String caPem = new String(ca.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
      if (!ca.waitFor(30, TimeUnit.SECONDS) || ca.exitValue() != 0) {
        throw new EddyException("eddy-driver cloud-ca failed: " + caPem.strip());
      }
      Path gatherFile = dir.resolve("gather");
      Path notifyFile = dir.resolve("leader");
      Path statusFile = dir.resolve("status.json");
      Path driverLog = dir.resolve("eddy-driver.log");
      String driverHost = conf.get("spark.driver.host", "127.0.0.1");
      String name = settings.get("name");
      List<String> command = new ArrayList<>(List.of(driverBin, "attach", "--nodes", Integer.toString(n), "--secret-file", secretFile.toString(),
          "--gather-file", gatherFile.toString(), "--notify", notifyFile.toString(), "--status-file", statusFile.toString(),
          "--stop-on-stdin-eof", "--driver-ip", driverHost, "--port", settings.get("port"), "--timeout", timeoutSeconds + "s",
          "--heartbeat-interval", settings.get("heartbeat_interval"), "--heartbeat-timeout", settings.get("heartbeat_timeout"),
          "--name", name));
      // Standard input stays a pipe from this JVM: when it goes, the cloud stops.
      driver = new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.appendTo(driverLog.toFile()))
          .redirectErrorStream(true).start();
      driverStdin = driver.getOutputStream();
      String gather = waitForFile(gatherFile, "the gather service to listen", 30).strip();

      Map<String, String> env = new LinkedHashMap<>();
      env.put("EDDY_DRIVER", gather);
      env.put("EDDY_CLOUD_NAME", name);
      env.put("EDDY_PORT", settings.get("port"));
      env.put("EDDY_MEMORY", settings.get("memory"));
      env.put("EDDY_TIMEOUT", timeoutSeconds + "s");
      env.put("EDDY_HEARTBEAT_INTERVAL", settings.get("heartbeat_interval"));
      env.put("EDDY_HEARTBEAT_TIMEOUT", settings.get("heartbeat_timeout"));
      if (settings.get("network") != null) {
        env.put("EDDY_NETWORK", settings.get("network"));
      }
      if (localMode) {
        startLocalWorkers(mapperBin, n, env, secretFile, driverHost);
      } else {
        startInExecutors(sc, mapperBin, n, env, secret);
      }
      waitForFile(notifyFile, "the cloud of " + n + " to form", timeoutSeconds);
      String observer = waitForObserver(statusFile);
      restToken = restToken(secret, name);
      rest = new Rest(observer, restToken);
      access = new CloudAccess(name, secret, caPem, locateWorkers(statusFile), rest);
      LOG.info("Eddy cloud " + name + " of " + n + " workers formed in " + (System.nanoTime() - t0) / 1_000_000 + " ms; REST " + observer);
    } catch (IOException e) {
      throw new EddyException("cannot start the Eddy cloud: " + e.getMessage() + "; " + logReport(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new EddyException("starting the Eddy cloud was interrupted", e);
    }
  }

  /** The REST token every node derives from the secret: HMAC-SHA256 of the cloud's name. */
  static String restToken(String secret, String cloudName) {
    return CloudAccess.hmacHex(secret, "eddy-rest-v1|" + cloudName);
  }

  private static String findBinary(String name, SparkConf conf) {
    List<String> looked = new ArrayList<>();
    for (String dirName : new String[] {conf.get("spark.eddy.binDir", null), System.getenv("EDDY_BIN_DIR")}) {
      if (dirName != null && !dirName.isEmpty()) {
        looked.add(dirName);
        File f = new File(dirName, name);
        if (f.isFile()) {
          return f.getAbsolutePath();
        }
      }
    }
    for (String p : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
      File f = new File(p, name);
      if (!p.isEmpty() && f.isFile() && f.canExecute()) {
        return f.getAbsolutePath();
      }
    }
    looked.add("PATH");
    throw new EddyException("cannot find " + name + " (looked in " + String.join(", ", looked) + "): build it with "
        + "`cargo build --release --bins` and set spark.eddy.binDir (or EDDY_BIN_DIR) to target/release");
  }

  private int expectedExecutors(SparkContext sc) {
    SparkConf conf = sc.getConf();
    String instances = conf.get("spark.executor.instances", null);
    if (instances != null) {
      return Integer.parseInt(instances);
    }
    Matcher m = LOCAL_CLUSTER.matcher(sc.master());
    if (m.lookingAt()) {
      return Integer.parseInt(m.group(1));
    }
    String coresMax = conf.get("spark.cores.max", null);
    String executorCores = conf.get("spark.executor.cores", null);
    if (sc.master().startsWith("spark://") && coresMax != null && executorCores != null && Integer.parseInt(executorCores) > 0) {
      return Integer.parseInt(coresMax) / Integer.parseInt(executorCores);
    }
    return -1;
  }

  private static int liveExecutors(SparkContext sc) {
    return Math.max(0, sc.statusTracker().getExecutorInfos().length - 1); // it lists the driver too
  }

  private int waitForExecutors(SparkContext sc) throws RuntimeException {
    int expected = settings.containsKey("nodes") ? Integer.parseInt(settings.get("nodes")) : expectedExecutors(sc);
    long wait = Math.min(timeoutSeconds, 60) * 1000L;
    long deadline = System.currentTimeMillis() + wait;
    int live = liveExecutors(sc);
    long changed = System.currentTimeMillis();
    while (System.currentTimeMillis() < deadline) {
      int now = liveExecutors(sc);
      if (now != live) {
        live = now;
        changed = System.currentTimeMillis();
      }
      if (expected > 0 && live >= expected) {
        break;
      }
      // Without a number to wait for, executors still registering would be left out.
      if (expected <= 0 && live > 0 && System.currentTimeMillis() - changed >= 3000) {
        break;
      }
      sleep(100);
    }
    int n = expected > 0 ? expected : live;
    if (n < 1) {
      throw new EddyException("no Spark executors are running; Eddy runs one worker in each");
    }
    if (live < n) {
      throw new EddyException(n + " workers need " + n + " executors, but " + live + " are running after " + wait / 1000 + " s");
    }
    return n;
  }

  private void startLocalWorkers(String mapperBin, int n, Map<String, String> env, Path secretFile, String host) throws IOException {
    for (int k = 0; k < n; k++) {
      File log = dir.resolve("eddy-mapper-" + k + ".log").toFile();
      Process p = WorkerStarter.mapperProcess(List.of(mapperBin), env, secretFile, k, host, log).start();
      localWorkers.add(p);
      Map<String, Object> record = new LinkedHashMap<>();
      record.put("worker", k);
      record.put("executor", "driver");
      record.put("host", host);
      record.put("pid", p.pid());
      workers.add(record);
    }
  }

  private void startInExecutors(SparkContext sc, String mapperBin, int n, Map<String, String> env, String secret) throws IOException {
    sc.addFile(mapperBin);
    JavaSparkContext jsc = JavaSparkContext.fromSparkContext(sc);
    List<Integer> ids = IntStream.range(0, n).boxed().toList();
    // A barrier stage runs all n tasks at once, one per free task slot: one per executor
    // where each executor has one slot; two on one executor is refused below.
    List<String> records = Arrays.asList((String[]) jsc.parallelize(ids, n).rdd().barrier()
        .mapPartitions(new WorkerStarter(env, secret), false, ClassTag$.MODULE$.<String>apply(String.class)).collect());
    Map<String, List<Object>> byExecutor = new HashMap<>();
    for (String r : records) {
      @SuppressWarnings("unchecked")
      Map<String, Object> record = Rest.JSON.readValue(r, Map.class);
      workers.add(record);
      byExecutor.computeIfAbsent(String.valueOf(record.get("executor")), e -> new ArrayList<>()).add(record.get("worker"));
    }
    workers.sort(Comparator.comparingInt(w -> ((Number) w.get("worker")).intValue()));
    byExecutor.forEach((executor, ws) -> {
      if (ws.size() > 1) {
        throw new EddyException("workers " + ws + " landed on executor " + executor + ": Eddy needs one worker per executor "
            + "(give each executor one task slot, spark.executor.cores=1 with spark.task.cpus=1, or ask for fewer nodes)");
      }
    });
  }

  private String waitForFile(Path file, String what, long seconds) throws IOException {
    long deadline = System.currentTimeMillis() + seconds * 1000;
    while (System.currentTimeMillis() < deadline) {
      if (Files.exists(file) && Files.size(file) > 0) {
        return Files.readString(file);
      }
      if (!driver.isAlive()) {
        throw new EddyException("eddy-driver exited (" + driver.exitValue() + ") while waiting for " + what + "; " + logReport());
      }
      sleep(50);
    }
    throw new EddyException("timed out after " + seconds + " s waiting for " + what + "; " + logReport());
  }

  private JsonNode status(Path statusFile) {
    try {
      return Files.exists(statusFile) ? Rest.JSON.readTree(statusFile.toFile()) : Rest.JSON.createObjectNode();
    } catch (IOException e) {
      return Rest.JSON.createObjectNode(); // being written: read again
    }
  }

  /** The observer's REST URL: the driver writes the leader's address before the observer joined. */
  private String waitForObserver(Path statusFile) {
    long deadline = System.currentTimeMillis() + Math.min(timeoutSeconds, 60) * 1000L;
    while (System.currentTimeMillis() < deadline) {
      JsonNode st = status(statusFile);
      if (st.hasNonNull("observer_rest_url")) {
        return st.get("observer_rest_url").asText();
      }
      if ("failed".equals(st.path("phase").asText())) {
        throw new EddyException(st.path("error").asText() + "; " + logReport());
      }
      sleep(50);
    }
    throw new EddyException("the observer did not join the cloud; " + logReport());
  }

  /** Each worker's node address (IP and gRPC port), from the driver's status and the cloud. */
  private List<CloudAccess.Worker> locateWorkers(Path statusFile) {
    Map<String, String> registered = new HashMap<>();
    for (JsonNode w : status(statusFile).path("workers")) {
      registered.put(w.get("worker_id").asText(), w.get("node").asText());
    }
    Map<String, Integer> grpcPorts = new HashMap<>();
    for (JsonNode node : rest.get("/3/Cloud").path("nodes")) {
      if (node.hasNonNull("grpc_port")) {
        grpcPorts.put(node.get("ip_port").asText(), node.get("grpc_port").asInt());
      }
    }
    List<CloudAccess.Worker> located = new ArrayList<>();
    for (Map<String, Object> w : workers) {
      String id = String.valueOf(w.get("worker"));
      String ipPort = registered.get(id);
      if (ipPort == null || !grpcPorts.containsKey(ipPort)) {
        throw new EddyException("worker " + id + " on executor " + w.get("executor") + " is not in the cloud; " + logReport());
      }
      w.put("node", ipPort);
      String ip = ipPort.substring(0, ipPort.lastIndexOf(':'));
      Object executor = w.get("executor");
      located.add(new CloudAccess.Worker(Integer.parseInt(id), ip, grpcPorts.get(ipPort), String.valueOf(w.get("host")),
          executor == null ? null : executor.toString()));
    }
    return located;
  }

  private String logReport() {
    if (dir == null) {
      return "no driver log";
    }
    try {
      List<String> lines = Files.readAllLines(dir.resolve("eddy-driver.log"));
      return "the last lines of the driver log:\n" + String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    } catch (IOException e) {
      return "no driver log";
    }
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new EddyException("interrupted", e);
    }
  }

  // -- state -----------------------------------------------------------------------------------

  /** The observer ({@code eddy-driver attach}) is up, or the adopted cloud's owner says so. */
  public boolean isRunning() {
    return external ? access != null : driver != null && driver.isAlive();
  }

  CloudAccess access() {
    return access;
  }

  Rest rest() {
    return rest;
  }

  /** The observer's REST URL (send {@link #restToken()} as {@code Authorization: Bearer}). */
  public String restUrl() {
    return rest.url;
  }

  public String restToken() {
    return restToken;
  }

  /** The workers started: worker, executor, host, pid, node. */
  public List<Map<String, Object>> workers() {
    return workers;
  }

  /** {@code GET /3/Cloud} as JSON text. */
  public String cloud() {
    return rest.get("/3/Cloud").toString();
  }

  // -- frames ----------------------------------------------------------------------------------

  /** The ids of the frames in the cloud. */
  public List<String> frames() {
    List<String> ids = new ArrayList<>();
    for (JsonNode f : rest.get("/3/Frames").path("frames")) {
      ids.add(f.get("frame_id").asText());
    }
    return ids;
  }

  JsonNode frameInfo(String frameId) {
    return rest.get(Rest.framePath(frameId) + "?row_count=0").get("frame");
  }

  boolean frameExists(String frameId) {
    return frames().contains(frameId);
  }

  /** Rows of a frame. */
  public long rows(String frameId) {
    return frameInfo(frameId).get("rows").asLong();
  }

  /** The summary of every column (JSON text: {@code GET /3/Frames/{id}/summary}). */
  public String summary(String frameId) {
    return rest.get(Rest.framePath(frameId) + "/summary").get("columns").toString();
  }

  /** Deletes a frame. */
  public void delete(String frameId) {
    rest.delete(Rest.framePath(frameId));
  }

  /**
   * Imports a file, directory or glob (local, {@code s3://}, {@code hdfs://}) into a frame and
   * returns its id; waits for the import, up to an hour.
   */
  public String importFile(String path) {
    ObjectNode body = Rest.JSON.createObjectNode().put("path", path);
    String job = rest.post("/3/ImportFiles", body).get("job").get("key").asText();
    long deadline = System.currentTimeMillis() + 3_600_000L;
    while (System.currentTimeMillis() < deadline) {
      JsonNode state = rest.get("/3/Jobs/" + job).get("jobs").get(0);
      String status = state.get("status").asText();
      if ("DONE".equals(status)) {
        return state.get("dest").asText();
      }
      if (!"RUNNING".equals(status)) {
        throw new EddyException("import of " + path + " failed: " + state.path("error").asText());
      }
      sleep(100);
    }
    throw new EddyException("import of " + path + " did not finish within an hour; it keeps running as " + job);
  }

  /** Sends a DataFrame to the cloud as a new frame; returns its id. */
  public String asFrame(Dataset<Row> df) {
    return asFrame(df, null);
  }

  /**
   * Sends a DataFrame to the cloud as frame {@code name} (a new id when null): each partition
   * becomes one chunk on the worker of its executor. {@code categorical}: string columns to
   * store as categoricals.
   */
  public String asFrame(Dataset<Row> df, String name, String... categorical) {
    String frameId = name != null ? name : "spark_" + UUID.randomUUID().toString().replace("-", "").substring(0, 12) + ".hex";
    conversionStarted = System.nanoTime();
    df.write().format("eddy").mode("append").option("categorical", String.join(",", categorical))
        .option(FrameWrite.NULLABLE_OPTION, FrameWrite.nullability(df.schema())).save(frameId);
    return frameId;
  }

  void noteConversion(String frameId, JsonNode frame, int chunks, int localChunks) {
    Map<String, Object> c = new LinkedHashMap<>();
    c.put("frame", frameId);
    c.put("rows", frame.get("rows").asLong());
    c.put("chunks", chunks);
    c.put("local_chunks", localChunks);
    c.put("bytes_in_memory", frame.path("bytes_in_memory").asLong());
    c.put("seconds", (System.nanoTime() - conversionStarted) / 1e9);
    lastConversion = c;
  }

  /** What the last {@code asFrame} did: frame, rows, chunks, local_chunks, seconds. */
  public Map<String, Object> lastConversion() {
    return lastConversion;
  }

  /** A Spark DataFrame of a frame's rows, in the frame's order, one partition per chunk. */
  public Dataset<Row> asSparkFrame(String frameId) {
    return spark.read().format("eddy").load(frameId);
  }

  // -- stop ------------------------------------------------------------------------------------

  /** Stops every worker and the observer. */
  public synchronized void stop() {
    try {
      if (!external && isRunning() && rest != null) {
        try {
          rest.request("POST", "/3/Shutdown", null, Duration.ofSeconds(10));
        } catch (EddyException ignored) {
          // closing the driver's standard input below stops the cloud too
        }
      }
    } finally {
      teardown();
      synchronized (EddyContext.class) {
        if (activeContext == this) {
          activeContext = null;
        }
      }
    }
  }

  private void teardown() {
    if (external) {
      access = null;
      return;
    }
    if (driver != null) {
      try {
        driverStdin.close(); // the observer stops the cloud on EOF
      } catch (IOException ignored) {
        // gone already
      }
      try {
        if (!driver.waitFor(20, TimeUnit.SECONDS)) {
          driver.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    for (Process p : localWorkers) {
      try {
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
          p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    if (dir != null) {
      try (var paths = Files.walk(dir)) {
        paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      } catch (IOException ignored) {
        // a temporary directory: the system cleans it eventually
      }
    }
  }

  @Override
  public String toString() {
    return "EddyContext(" + settings.get("name") + ", " + workers.size() + " workers, " + (rest == null ? "not started" : rest.url) + ")";
  }
}
