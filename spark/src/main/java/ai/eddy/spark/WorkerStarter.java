package ai.eddy.spark;

import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.SparkEnv;
import org.apache.spark.SparkFiles;
import org.apache.spark.TaskContext;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

/**
 * The task that starts one worker ({@code eddy-mapper}, shipped with {@code addFile}) on the
 * executor it runs on, detached, with the gather address and the secret; worker id = the
 * partition. It returns the worker's record (JSON) for the driver.
 */
final class WorkerStarter extends AbstractFunction1<Iterator<Integer>, Iterator<String>> implements java.io.Serializable {
  private static final long serialVersionUID = 1L;
  private final Map<String, String> env;
  private final String secret;

  WorkerStarter(Map<String, String> env, String secret) {
    this.env = new LinkedHashMap<>(env);
    this.secret = secret;
  }

  /** Writes the secret to a file only this user can read; workers read it there, not from
   * their environment (which /proc/PID/environ shows). */
  static Path secretFile(String secret, Path dir, String name) throws IOException {
    Path path = dir.resolve(name);
    Files.deleteIfExists(path);
    Files.createFile(path, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    Files.writeString(path, secret);
    return path;
  }

  /** {@code setsid} where there is one: the worker gets a session of its own, so signals
   * meant for the executor's group do not reach it (it ends with the executor's JVM instead). */
  static List<String> detached(String binary) {
    List<String> command = new ArrayList<>();
    for (String dir : new String[] {"/usr/bin", "/bin"}) {
      if (new File(dir, "setsid").canExecute()) {
        command.add(dir + "/setsid");
        break;
      }
    }
    command.add(binary);
    return command;
  }

  /**
   * A worker's process: the cloud's settings ({@code env}), its secret file and id, its host's
   * address to bind (unless a network is given), ending with this JVM, logging to {@code log}.
   */
  static ProcessBuilder mapperProcess(List<String> command, Map<String, String> env, Path secretFile, int worker, String host, File log) {
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.environment().putAll(env);
    pb.environment().put("EDDY_SECRET_FILE", secretFile.toString());
    pb.environment().put("EDDY_WORKER_ID", Integer.toString(worker));
    pb.environment().put("EDDY_EXIT_WITH_PID", Long.toString(ProcessHandle.current().pid()));
    if (!env.containsKey("EDDY_NETWORK")) {
      pb.environment().put("EDDY_IP", host);
    }
    pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    pb.redirectOutput(ProcessBuilder.Redirect.appendTo(log)).redirectErrorStream(true);
    return pb;
  }

  @Override
  public Iterator<String> apply(Iterator<Integer> ignored) {
    int worker = TaskContext.get().partitionId();
    SparkEnv spark = SparkEnv.get();
    String host = spark.blockManager().blockManagerId().host();
    String executor = spark.executorId();
    try {
      Path workDir = Path.of("").toAbsolutePath();
      File mapper = new File(SparkFiles.get("eddy-mapper"));
      if (!mapper.setExecutable(true)) {
        throw new EddyException("cannot make " + mapper + " executable on executor " + executor);
      }
      Path secretPath = secretFile(secret, workDir, "eddy-secret-" + worker);
      File log = workDir.resolve("eddy-mapper-" + worker + ".log").toFile();
      ProcessBuilder pb = mapperProcess(detached(mapper.getPath()), env, secretPath, worker, host, log);
      pb.environment().keySet().removeIf(k -> !k.equals("PATH") && !k.startsWith("EDDY_"));
      pb.directory(workDir.toFile());
      Process proc = pb.start();
      // In local mode the working directory is the user's: the secret goes with the worker.
      proc.onExit().thenRun(() -> secretPath.toFile().delete());
      Map<String, Object> record = new LinkedHashMap<>();
      record.put("worker", worker);
      record.put("executor", executor);
      record.put("host", host);
      record.put("hostname", InetAddress.getLocalHost().getHostName());
      record.put("pid", proc.pid());
      record.put("log", log.getPath());
      return CollectionConverters.asScala(List.of(Rest.JSON.writeValueAsString(record)).iterator());
    } catch (IOException e) {
      throw new EddyException("cannot start an Eddy worker on executor " + executor + ": " + e.getMessage(), e);
    }
  }
}
